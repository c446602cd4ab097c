#include "eigenformer/core/shape.hpp"

#include <vector>

#include "support/test_support.hpp"

using namespace eigenformer;

namespace shape_test {

TEST(Shape, ToStringPrintsParenthesizedCommaSeparatedDims) {
  EXPECT_EQ(to_string(Shape{}), "()");
  EXPECT_EQ(to_string(Shape{5}), "(5)");
  EXPECT_EQ(to_string(Shape{2, 3}), "(2, 3)");
  EXPECT_EQ(to_string(Shape{4, 0, 1, 7}), "(4, 0, 1, 7)");
}

TEST(Shape, ConvertsFromStdVectorAndPrintsLikeIt) {
  const std::vector<Index> dims = {2, 3, 4};
  const Shape s(dims.begin(), dims.end());
  EXPECT_EQ(s, (Shape{2, 3, 4}));
  EXPECT_EQ(to_string(s), "(2, 3, 4)");
  EXPECT_EQ(to_string(dims), "(2, 3, 4)");
  EXPECT_EQ(to_string({5, 6}), "(5, 6)");
}

TEST(Shape, NumelIsTheProductOfDimsAndOneForAScalar) {
  EXPECT_EQ(numel(Shape{}), 1);
  EXPECT_EQ(numel(Shape{7}), 7);
  EXPECT_EQ(numel(Shape{2, 3, 4}), 24);
  EXPECT_EQ(numel(Shape{2, 0, 4}), 0);
}

TEST(Shape, CheckValidShapeRejectsNegativeDimsNamingTheFunction) {
  EXPECT_NO_THROW(detail::check_valid_shape("f", Shape{}));
  EXPECT_NO_THROW(detail::check_valid_shape("f", Shape{0, 3}));
  EXPECT_THROW_WITH(detail::check_valid_shape("myfn", Shape{2, -3}), ValueError, {"myfn", "(2, -3)", "negative"});
}

TEST(Shape, CheckValidShapeRejectsShapesWhoseElementCountOverflows) {
  const Index big = Index(1) << 40;
  EXPECT_THROW_WITH(detail::check_valid_shape("myfn", Shape{big, big}), ValueError, {"myfn", "too many elements"});
  EXPECT_NO_THROW(detail::check_valid_shape("f", Shape{big, 0, big}));  // zero elements, however large the rest
}

TEST(Shape, NormalizeAxisMapsNegativeAxesFromTheEnd) {
  EXPECT_EQ(detail::normalize_axis("f", 0, 3), 0);
  EXPECT_EQ(detail::normalize_axis("f", 2, 3), 2);
  EXPECT_EQ(detail::normalize_axis("f", -1, 3), 2);
  EXPECT_EQ(detail::normalize_axis("f", -3, 3), 0);
}

TEST(Shape, NormalizeAxisOutOfRangeThrowsValueErrorNamingFunctionAndAxis) {
  EXPECT_THROW_WITH(detail::normalize_axis("softmax", 3, 3), ValueError, {"softmax", "axis 3", "rank 3"});
  EXPECT_THROW_WITH(detail::normalize_axis("softmax", -4, 3), ValueError, {"softmax", "axis -4", "rank 3"});
  EXPECT_THROW_WITH(detail::normalize_axis("sum", 0, 0), ValueError, {"sum", "axis 0", "rank 0"});
}

TEST(Shape, BroadcastShapesFollowsNumPyRules) {
  EXPECT_EQ(detail::broadcast_shapes("f", {2, 3}, {2, 3}), (Shape{2, 3}));
  EXPECT_EQ(detail::broadcast_shapes("f", {2, 3}, {3}), (Shape{2, 3}));       // align trailing axes
  EXPECT_EQ(detail::broadcast_shapes("f", {3}, {2, 3}), (Shape{2, 3}));
  EXPECT_EQ(detail::broadcast_shapes("f", {2, 1, 3}, {4, 1}), (Shape{2, 4, 3}));  // size-1 axes stretch both ways
  EXPECT_EQ(detail::broadcast_shapes("f", {}, {5, 2}), (Shape{5, 2}));        // a scalar broadcasts to anything
  EXPECT_EQ(detail::broadcast_shapes("f", {}, {}), (Shape{}));
  EXPECT_EQ(detail::broadcast_shapes("f", {0, 1}, {1, 4}), (Shape{0, 4}));   // size 0 wins over size 1
  EXPECT_EQ(detail::broadcast_shapes("f", {1}, {0}), (Shape{0}));
}

TEST(Shape, BroadcastShapesMismatchThrowsShapeErrorNamingFunctionAndBothShapes) {
  EXPECT_THROW_WITH(detail::broadcast_shapes("add", {2, 3}, {4, 3}), ShapeError,
                    {"add: shapes cannot be broadcast together: a is (2, 3), b is (4, 3)"});
  EXPECT_THROW_WITH(detail::broadcast_shapes("mul", {3}, {2, 4}), ShapeError, {"mul", "(3)", "(2, 4)"});
  EXPECT_THROW_WITH(detail::broadcast_shapes("mul", {0}, {3}), ShapeError, {"mul", "(0)", "(3)"});
}

TEST(Shape, StridesAreRowMajorInElements) {
  EXPECT_EQ(detail::strides_of({}), (Shape{}));
  EXPECT_EQ(detail::strides_of({5}), (Shape{1}));
  EXPECT_EQ(detail::strides_of({2, 3, 4}), (Shape{12, 4, 1}));
}

}  // namespace shape_test

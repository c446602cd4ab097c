#!/usr/bin/python3
"""Reference numbers for tests/optim/*_test.cpp, computed with PyTorch 1.13.

Run: /usr/bin/python3 tests/optim/make_reference.py
It prints C++ initializer lists; each block says which test file it was pasted into. The tiny problem: two
parameters, w (2, 3) and b (3), with fixed starting values W0, B0 and fixed gradients GRADS for 5 steps (the
same literals are kW0, kB0, kGrads in tests/optim/tiny_problem.hpp). Hyperparameters that the C++ options hold
as T (lr, momentum, dampening, eps, weight_decay) are rounded to float32 first in the float32 runs, so both
sides start from the same numbers; the float64 runs keep them exact, as C++ doubles do. Adam's betas stay
Python floats, as the C++ options keep them in double. Adam runs with foreach=False (torch 1.13's
_single_tensor_adam, the arithmetic the C++ follows).
"""
import math

import numpy as np
import torch

W0 = [[0.5, -1.25, 2.0], [0.75, -0.3, 1.1]]
B0 = [0.2, -0.4, 0.05]
# Large gradients first, then small ones: the second moment falls, so amsgrad's running max differs from Adam.
GRADS = [
    ([[0.9, -0.4, 0.25], [-1.5, 0.6, 0.0]], [0.3, -0.8, 1.2]),
    ([[1.1, -0.2, 0.35], [-1.2, 0.9, 0.1]], [0.5, -0.6, 0.7]),
    ([[0.05, 0.1, -0.02], [0.3, -0.15, 0.04]], [0.02, 0.1, -0.05]),
    ([[-0.3, 0.2, 0.1], [0.2, 0.05, -0.07]], [0.15, -0.02, 0.03]),
    ([[0.04, -0.025, -0.03], [-0.01, 0.035, 0.02]], [-0.025, 0.03, 0.012]),
]


def f32(x):
    return float(np.float32(x))


def params(dtype):
    w = torch.tensor(W0, dtype=dtype, requires_grad=True)
    b = torch.tensor(B0, dtype=dtype, requires_grad=True)
    return w, b


def flat(*ts):
    return [v for t in ts for v in t.detach().reshape(-1).tolist()]


def run(make_opt, dtype=torch.float32, state_keys=()):
    w, b = params(dtype)
    opt = make_opt([w, b])
    traj = []
    for gw, gb in GRADS:
        w.grad = torch.tensor(gw, dtype=dtype)
        b.grad = torch.tensor(gb, dtype=dtype)
        opt.step()
        traj.append(flat(w, b))
    state = {k: flat(opt.state[w][k], opt.state[b][k]) for k in state_keys}
    return traj, state


def fmt(v, dtype):
    return str(np.float32(v)) + "f" if dtype == torch.float32 else repr(float(v))


def emit(name, rows, dtype=torch.float32):
    ctype = "float" if dtype == torch.float32 else "double"
    if rows and isinstance(rows[0], list):
        body = ",\n".join("    {" + ", ".join(fmt(v, dtype) for v in r) + "}" for r in rows)
        print(f"const std::vector<std::vector<{ctype}>> {name} = {{\n{body}}};")
    else:
        print(f"const std::vector<{ctype}> {name} = {{" + ", ".join(fmt(v, dtype) for v in rows) + "};")


def sgd(double=False, **kw):
    kw = {k: (f32(v) if isinstance(v, float) and not double else v) for k, v in kw.items()}
    return lambda p: torch.optim.SGD(p, **kw)


def adam(cls=torch.optim.Adam, double=False, **kw):
    kw = {k: (f32(v) if k in ("lr", "eps", "weight_decay") and not double else v) for k, v in kw.items()}
    return lambda p: cls(p, foreach=False, **kw)


print("// ---- sgd_test.cpp ----")
traj, _ = run(sgd(lr=0.1))
emit("kSgdPlain", traj)
traj, st = run(sgd(lr=0.1, momentum=0.9, dampening=0.25), state_keys=["momentum_buffer"])
emit("kSgdMomentum", traj)
emit("kSgdMomentumBuffer", st["momentum_buffer"])
traj, _ = run(sgd(lr=0.1, momentum=0.9, nesterov=True))
emit("kSgdNesterov", traj)
traj, _ = run(sgd(lr=0.1, momentum=0.8, weight_decay=0.05))
emit("kSgdMomentumWeightDecay", traj)
traj, _ = run(sgd(True, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.05), dtype=torch.float64)
emit("kSgdNesterovWeightDecayDouble", traj[-1], torch.float64)

print("// ---- adam_test.cpp ----")
traj, st = run(adam(lr=0.1), state_keys=["exp_avg", "exp_avg_sq"])
emit("kAdam", traj)
emit("kAdamExpAvg", st["exp_avg"])
emit("kAdamExpAvgSq", st["exp_avg_sq"])
traj, _ = run(adam(lr=0.1, weight_decay=0.1))
emit("kAdamWeightDecay", traj)
traj, _ = run(adam(lr=0.1, betas=(0.8, 0.99), eps=1e-3))  # eps large enough to show where it is added
emit("kAdamBetasEps", traj)
traj, st = run(adam(lr=0.1, amsgrad=True), state_keys=["max_exp_avg_sq"])
emit("kAdamAmsgrad", traj)
emit("kAdamAmsgradMaxExpAvgSq", st["max_exp_avg_sq"])
traj, _ = run(adam(torch.optim.AdamW, lr=0.1))  # default weight_decay 0.01
emit("kAdamW", traj)
traj, _ = run(adam(torch.optim.AdamW, lr=0.1, weight_decay=0.2, betas=(0.8, 0.99), eps=1e-3, amsgrad=True))
emit("kAdamWCustom", traj)
traj, _ = run(adam(torch.optim.AdamW, True, lr=0.1, weight_decay=0.2, amsgrad=True), dtype=torch.float64)
emit("kAdamWAmsgradDouble", traj[-1], torch.float64)

print("// ---- lr_schedule_test.cpp ----")


# transformers.optimization (v4.x) lambdas, copied verbatim: transformers is not installed here.
def linear_lambda(num_warmup_steps, num_training_steps):
    def lr_lambda(current_step):
        if current_step < num_warmup_steps:
            return float(current_step) / float(max(1, num_warmup_steps))
        return max(0.0, float(num_training_steps - current_step) /
                   float(max(1, num_training_steps - num_warmup_steps)))
    return lr_lambda


def cosine_lambda(num_warmup_steps, num_training_steps, num_cycles=0.5):
    def lr_lambda(current_step):
        if current_step < num_warmup_steps:
            return float(current_step) / float(max(1, num_warmup_steps))
        progress = float(current_step - num_warmup_steps) / float(max(1, num_training_steps - num_warmup_steps))
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress)))
    return lr_lambda


def lrs(lam, steps, base_lr=0.5):
    # LambdaLR sets lr = base_lr * lambda(k) before the k-th optimizer.step() (k counts from 0).
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base_lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lam)
    out = {}
    for k in range(max(steps) + 1):
        if k in steps:
            out[k] = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
    return [out[k] for k in steps]


STEPS = [0, 1, 5, 9, 10, 11, 40, 99, 100, 120]
print("// steps:", STEPS)
emit("kLinear", lrs(linear_lambda(10, 100), STEPS), torch.float64)
emit("kCosine", lrs(cosine_lambda(10, 100), STEPS), torch.float64)
emit("kCosineNoWarmup", lrs(cosine_lambda(0, 100), STEPS), torch.float64)
emit("kCosineTwoCycles", lrs(cosine_lambda(10, 100, 2.0), STEPS), torch.float64)

print("// ---- clip_grad_test.cpp ----")
for max_norm in (1.0, 100.0):
    w, b = params(torch.float32)
    w.grad = torch.tensor(GRADS[0][0])
    b.grad = torch.tensor(GRADS[0][1])
    norm = torch.nn.utils.clip_grad_norm_([w, b], max_norm)
    print(f"// max_norm {max_norm}: total norm {float(norm)!r}")
    emit(f"kClipped{int(max_norm)}", flat(w.grad, b.grad))

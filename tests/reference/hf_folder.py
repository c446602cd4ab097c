"""Hugging Face model folders with plain PyTorch: config.json, safetensors weights (one file or sharded), and the key
handling of transformers' save_pretrained / from_pretrained, as transformers 4.46 does them.

Folder layout (what save_pretrained writes):
  config.json                       to_diff_dict() of the config: json.dumps(indent=2, sort_keys=True) + "\\n"
  model.safetensors                 the state dict without tied duplicates, "__metadata__": {"format": "pt"}
  or model-0000K-of-0000N.safetensors + model.safetensors.index.json
                                    {"metadata": {"total_size": bytes}, "weight_map": {name: shard file}}
  generation_config.json            only for models that can generate (GPT-2 LM head)

Loading (from_pretrained): "gamma" / "beta" in a key become "weight" / "bias"; the base-model prefix ("bert.",
"transformer.") is added or removed so head and bare checkpoints load into either; checkpoint keys naming a
buffer of the model (position_ids, attn.bias, attn.masked_bias) are dropped without a word, other extra keys are
"unexpected"; a missing key whose tensor is tied to a loaded one is not "missing"; values are cast to the model's
dtype.
"""

import collections
import copy
import json
import os
import re
import struct

import numpy as np
import torch

TRANSFORMERS_VERSION = "4.46.3"
WEIGHTS_NAME = "model.safetensors"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
CONFIG_NAME = "config.json"
GENERATION_CONFIG_NAME = "generation_config.json"


# ----------------------------------------------------------------------------------------------------------------
# configuration (transformers' PretrainedConfig: attributes, defaults, to_diff_dict)

# Generation parameters every config carries (PretrainedConfig._get_global_generation_defaults); at their defaults
# they never reach config.json.
GENERATION_DEFAULTS = collections.OrderedDict([
    ("max_length", 20), ("min_length", 0), ("do_sample", False), ("early_stopping", False), ("num_beams", 1),
    ("num_beam_groups", 1), ("diversity_penalty", 0.0), ("temperature", 1.0), ("top_k", 50), ("top_p", 1.0),
    ("typical_p", 1.0), ("repetition_penalty", 1.0), ("length_penalty", 1.0), ("no_repeat_ngram_size", 0),
    ("encoder_no_repeat_ngram_size", 0), ("bad_words_ids", None), ("num_return_sequences", 1),
    ("output_scores", False), ("return_dict_in_generate", False), ("forced_bos_token_id", None),
    ("forced_eos_token_id", None), ("remove_invalid_values", False), ("exponential_decay_length_penalty", None),
    ("suppress_tokens", None), ("begin_suppress_tokens", None),
])


class PretrainedConfig:
    """The attributes every transformers config holds, with their defaults; subclasses add model keys.

    to_json_string() writes what save_pretrained writes: every model-specific key, and the common keys whose value
    differs from PretrainedConfig()'s or from the subclass's default.
    """

    model_type = ""
    attribute_map = {}  # standard name -> the model's own name (GPT-2: hidden_size -> n_embd)

    def __init__(self, **kwargs):
        self.return_dict = kwargs.pop("return_dict", True)
        self.output_hidden_states = kwargs.pop("output_hidden_states", False)
        self.output_attentions = kwargs.pop("output_attentions", False)
        self.torchscript = kwargs.pop("torchscript", False)
        self.torch_dtype = kwargs.pop("torch_dtype", None)  # kept as the string config.json holds ("float32")
        self.use_bfloat16 = kwargs.pop("use_bfloat16", False)
        self.tf_legacy_loss = kwargs.pop("tf_legacy_loss", False)
        self.pruned_heads = kwargs.pop("pruned_heads", {})
        self.tie_word_embeddings = kwargs.pop("tie_word_embeddings", True)
        self.chunk_size_feed_forward = kwargs.pop("chunk_size_feed_forward", 0)
        self.is_encoder_decoder = kwargs.pop("is_encoder_decoder", False)
        self.is_decoder = kwargs.pop("is_decoder", False)
        self.cross_attention_hidden_size = kwargs.pop("cross_attention_hidden_size", None)
        self.add_cross_attention = kwargs.pop("add_cross_attention", False)
        self.tie_encoder_decoder = kwargs.pop("tie_encoder_decoder", False)
        for name, default in GENERATION_DEFAULTS.items():
            setattr(self, name, kwargs.pop(name, default))
        self.architectures = kwargs.pop("architectures", None)
        self.finetuning_task = kwargs.pop("finetuning_task", None)
        self.id2label = kwargs.pop("id2label", None)
        self.label2id = kwargs.pop("label2id", None)
        if self.id2label is not None:
            kwargs.pop("num_labels", None)
            self.id2label = {int(key): value for key, value in self.id2label.items()}  # JSON keys are strings
        else:
            self.num_labels = kwargs.pop("num_labels", 2)  # the setter fills id2label / label2id with LABEL_i
        self.tokenizer_class = kwargs.pop("tokenizer_class", None)
        self.prefix = kwargs.pop("prefix", None)
        self.bos_token_id = kwargs.pop("bos_token_id", None)
        self.pad_token_id = kwargs.pop("pad_token_id", None)
        self.eos_token_id = kwargs.pop("eos_token_id", None)
        self.sep_token_id = kwargs.pop("sep_token_id", None)
        self.decoder_start_token_id = kwargs.pop("decoder_start_token_id", None)
        self.task_specific_params = kwargs.pop("task_specific_params", None)
        self.problem_type = kwargs.pop("problem_type", None)
        if self.problem_type not in (None, "regression", "single_label_classification", "multi_label_classification"):
            raise ValueError(f"PretrainedConfig: unknown problem_type {self.problem_type!r}")
        self._name_or_path = str(kwargs.pop("name_or_path", ""))
        self.transformers_version = kwargs.pop("transformers_version", None)
        # Any other key (old configs: gradient_checkpointing, n_ctx, ...) becomes an attribute and is saved back.
        for key, value in kwargs.items():
            setattr(self, key, value)

    def __setattr__(self, key, value):
        super().__setattr__(type(self).attribute_map.get(key, key), value)

    def __getattr__(self, key):  # only called when normal lookup fails
        mapped = type(self).attribute_map.get(key)
        if mapped is None:
            raise AttributeError(f"{type(self).__name__} has no attribute {key!r}")
        return getattr(self, mapped)

    @property
    def num_labels(self):
        return len(self.id2label)

    @num_labels.setter
    def num_labels(self, num_labels):
        if getattr(self, "id2label", None) is None or len(self.id2label) != num_labels:
            self.id2label = {i: f"LABEL_{i}" for i in range(num_labels)}
            self.label2id = dict(zip(self.id2label.values(), self.id2label.keys()))

    @classmethod
    def from_dict(cls, config_dict):
        config_dict = dict(config_dict)
        model_type = config_dict.pop("model_type", cls.model_type)
        if cls.model_type and model_type != cls.model_type:
            raise ValueError(f"{cls.__name__}.from_dict: model_type is {model_type!r}, expected {cls.model_type!r}")
        config = cls(**config_dict)
        config.pruned_heads = {int(key): value for key, value in config.pruned_heads.items()}
        return config

    def to_dict(self):
        output = copy.deepcopy(self.__dict__)
        output["model_type"] = type(self).model_type
        output["transformers_version"] = TRANSFORMERS_VERSION
        return output

    def to_diff_dict(self):
        config_dict = self.to_dict()
        default_config_dict = PretrainedConfig().to_dict()
        class_config_dict = type(self)().to_dict()
        return {key: value for key, value in config_dict.items()
                if key not in default_config_dict or key == "transformers_version"
                or value != default_config_dict[key]
                or (key in class_config_dict and value != class_config_dict[key])}

    def to_json_string(self, use_diff=True):
        config_dict = self.to_diff_dict() if use_diff else self.to_dict()
        return json.dumps(config_dict, indent=2, sort_keys=True) + "\n"


def generation_config_json(config):
    """generation_config.json as save_pretrained writes it for a model built from `config` (GenerationConfig
    .from_model_config: the token ids that are set, marked _from_model_config)."""
    output = {"_from_model_config": True}
    for key in ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id"):
        if getattr(config, key) is not None:
            output[key] = getattr(config, key)
    output["transformers_version"] = TRANSFORMERS_VERSION
    return json.dumps(output, indent=2, sort_keys=True) + "\n"


# ----------------------------------------------------------------------------------------------------------------
# safetensors, as the safetensors library writes it

# Safetensors dtype names in the order of the library's Dtype enum; tensors are laid out by descending enum rank
# (I64 before F32 before BF16 before F16), then by name, and the header lists them in that same order.
DTYPE_ORDER = ["BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "F64",
               "I64", "U64"]
TORCH_TO_ST = {torch.bool: "BOOL", torch.uint8: "U8", torch.int8: "I8", torch.int16: "I16", torch.float16: "F16",
               torch.bfloat16: "BF16", torch.int32: "I32", torch.float32: "F32", torch.float64: "F64",
               torch.int64: "I64"}
ST_TO_TORCH = {name: dtype for dtype, name in TORCH_TO_ST.items()}
TORCH_DTYPE_NAMES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16",
                     torch.float64: "float64"}


def _raw_bytes(t):
    """Little-endian bytes of a CPU tensor, element order row-major."""
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().astype("<i2", copy=False).tobytes()
    array = t.numpy()
    if t.dtype == torch.bool:
        array = array.astype(np.uint8)
    return array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()


def encode_safetensors(tensors, metadata=None):
    """Bytes of a safetensors file holding `tensors` (name -> torch.Tensor) laid out as the safetensors library
    lays them out; `metadata` (str -> str) goes to "__metadata__"."""
    names = sorted(tensors, key=lambda n: (-DTYPE_ORDER.index(TORCH_TO_ST[tensors[n].dtype]), n))
    header = collections.OrderedDict()
    if metadata:
        header["__metadata__"] = collections.OrderedDict(sorted(metadata.items()))
    chunks, offset = [], 0
    for name in names:
        data = _raw_bytes(tensors[name])
        header[name] = collections.OrderedDict([("dtype", TORCH_TO_ST[tensors[name].dtype]),
                                                ("shape", list(tensors[name].shape)),
                                                ("data_offsets", [offset, offset + len(data)])])
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def decode_safetensors(blob, where="safetensors"):
    """Parses safetensors bytes into (OrderedDict name -> torch.Tensor in file order, metadata dict)."""
    if len(blob) < 8:
        raise ValueError(f"{where}: shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        raise ValueError(f"{where}: header length {n} runs past the end ({len(blob)} bytes)")
    header = json.loads(blob[8:8 + n].decode("utf-8"), object_pairs_hook=collections.OrderedDict)
    buffer = memoryview(blob)[8 + n:]
    metadata = header.pop("__metadata__", {}) or {}
    tensors = collections.OrderedDict()
    covered = []
    for name, entry in header.items():
        dtype = ST_TO_TORCH.get(entry["dtype"])
        if dtype is None:
            raise ValueError(f"{where}: {name}: unsupported dtype {entry['dtype']}")
        begin, end = entry["data_offsets"]
        count = int(np.prod(entry["shape"], dtype=np.int64))
        width = torch.tensor([], dtype=dtype).element_size()
        if not 0 <= begin <= end <= len(buffer) or end - begin != count * width:
            raise ValueError(f"{where}: {name}: offsets [{begin}, {end}] do not fit shape {entry['shape']}")
        raw = bytearray(buffer[begin:end])
        flat = torch.frombuffer(raw, dtype=dtype) if count else torch.empty(0, dtype=dtype)
        tensors[name] = flat.reshape(entry["shape"]).clone()
        covered.append((begin, end))
    position = 0
    for begin, end in sorted(covered):
        if begin != position:
            raise ValueError(f"{where}: data buffer has a hole or an overlap at byte {position}")
        position = end
    if position != len(buffer):
        raise ValueError(f"{where}: data buffer has {len(buffer)} bytes, tensors cover {position}")
    return tensors, dict(metadata)


# ----------------------------------------------------------------------------------------------------------------
# save_pretrained

def _storage_ptr(t):
    return t.untyped_storage().data_ptr() if hasattr(t, "untyped_storage") else t.storage().data_ptr()


def tied_weight_keys(model):
    """_tied_weights_keys of the model and of every submodule, as full key patterns (transformers'
    _get_tied_weight_keys)."""
    keys = []
    for prefix, module in model.named_modules():
        for key in getattr(type(module), "_tied_weights_keys", None) or []:
            keys.append(f"{prefix}.{key}" if prefix else key)
    return keys


def remove_tied_duplicates(model, state_dict):
    """Drops the tied copies save_pretrained leaves out: in each group of keys sharing one storage, the keys
    matching a _tied_weights_keys pattern (in sorted order) are deleted while another name of the group remains."""
    groups = collections.defaultdict(list)
    for name, tensor in state_dict.items():
        groups[_storage_ptr(tensor)].append(name)
    patterns = tied_weight_keys(model)
    state_dict = collections.OrderedDict(state_dict)
    for names in groups.values():
        if len(names) < 2:
            continue
        found = 0
        for name in sorted(names):
            if any(re.search(p, name) for p in patterns):
                found += 1
                if found < len(names):
                    del state_dict[name]
        if sum(name in state_dict for name in names) > 1:
            raise ValueError(f"save_pretrained: tensors {sorted(names)} share storage and none is a tied key")
    return state_dict


def parse_size(size):
    """save_pretrained's max_shard_size: an int (bytes) or "50KB" / "5GB" (powers of 10) / "5GiB" (powers of 2)."""
    if isinstance(size, int):
        return size
    units = {"GIB": 2 ** 30, "MIB": 2 ** 20, "KIB": 2 ** 10, "GB": 10 ** 9, "MB": 10 ** 6, "KB": 10 ** 3}
    for unit, factor in units.items():
        if size.upper().endswith(unit):
            return int(size[:-len(unit)]) * factor
    raise ValueError(f"parse_size: cannot read {size!r}")


def shard_state_dict(state_dict, max_shard_size):
    """Splits a state dict the way huggingface_hub's split_torch_state_dict_into_shards does (used by
    save_pretrained): walk the tensors in order, start a new shard when the next tensor would pass the limit, put a
    tensor larger than the limit in a shard of its own. Returns (list of OrderedDicts, total bytes)."""
    limit = parse_size(max_shard_size)
    shards, current, current_size, total = [], collections.OrderedDict(), 0, 0
    for name, tensor in state_dict.items():
        size = tensor.numel() * tensor.element_size()
        total += size
        if size > limit:
            shards.append(collections.OrderedDict([(name, tensor)]))
            continue
        if current_size + size > limit:
            shards.append(current)
            current, current_size = collections.OrderedDict(), 0
        current[name] = tensor
        current_size += size
    if current:
        shards.append(current)
    return shards, total


def weight_files(tensors, max_shard_size=None):
    """{file name: bytes} of the weights: model.safetensors, or shards plus model.safetensors.index.json."""
    if max_shard_size is None:
        return {WEIGHTS_NAME: encode_safetensors(tensors, {"format": "pt"})}
    shards, total = shard_state_dict(tensors, max_shard_size)
    if len(shards) == 1:
        return {WEIGHTS_NAME: encode_safetensors(shards[0], {"format": "pt"})}
    files, weight_map = collections.OrderedDict(), {}
    for k, shard in enumerate(shards, start=1):
        file_name = f"model-{k:05d}-of-{len(shards):05d}.safetensors"
        files[file_name] = encode_safetensors(shard, {"format": "pt"})
        weight_map.update({name: file_name for name in shard})
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    files[WEIGHTS_INDEX_NAME] = (json.dumps(index, indent=2, sort_keys=True) + "\n").encode("utf-8")
    return files


def save_pretrained_files(model, max_shard_size=None):
    """{file name: bytes} that transformers' model.save_pretrained(dir, max_shard_size=...) writes for `model`
    (config.json, weights, generation_config.json for a model that generates). Sets config.architectures and
    config.torch_dtype as save_pretrained does."""
    config = model.config
    config.architectures = [type(model).__name__]
    dtype = next(p.dtype for p in model.parameters() if p.is_floating_point())
    config.torch_dtype = TORCH_DTYPE_NAMES[dtype]
    state_dict = remove_tied_duplicates(model, model.state_dict())
    files = collections.OrderedDict()
    files[CONFIG_NAME] = config.to_json_string().encode("utf-8")
    if getattr(model, "can_generate", False):
        files[GENERATION_CONFIG_NAME] = generation_config_json(config).encode("utf-8")
    files.update(weight_files(state_dict, max_shard_size))
    return files


def write_files(folder, files):
    os.makedirs(folder, exist_ok=True)
    for name, data in files.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)


# ----------------------------------------------------------------------------------------------------------------
# reading a folder and from_pretrained

def read_folder(folder):
    """Reads a model folder: returns (config dict, OrderedDict name -> tensor, info dict with the weight files)."""
    with open(os.path.join(folder, CONFIG_NAME), encoding="utf-8") as f:
        config = json.load(f)
    index_path = os.path.join(folder, WEIGHTS_INDEX_NAME)
    tensors = collections.OrderedDict()
    if os.path.exists(index_path):
        with open(index_path, encoding="utf-8") as f:
            index = json.load(f)
        weight_map = index["weight_map"]
        files = sorted(set(weight_map.values()))
        total = 0
        for file_name in files:
            with open(os.path.join(folder, file_name), "rb") as f:
                shard, _ = decode_safetensors(f.read(), file_name)
            for name, tensor in shard.items():
                if name in tensors:
                    raise ValueError(f"{folder}: {name} appears in two shards")
                if weight_map.get(name) != file_name:
                    raise ValueError(f"{folder}: {name} is in {file_name}, the index says {weight_map.get(name)}")
                tensors[name] = tensor
                total += tensor.numel() * tensor.element_size()
        if set(tensors) != set(weight_map):
            raise ValueError(f"{folder}: index names {sorted(set(weight_map) - set(tensors))} are in no shard")
        if index.get("metadata", {}).get("total_size", total) != total:
            raise ValueError(f"{folder}: index total_size {index['metadata']['total_size']}, tensors hold {total}")
        info = {"files": files, "sharded": True}
    else:
        with open(os.path.join(folder, WEIGHTS_NAME), "rb") as f:
            tensors, metadata = decode_safetensors(f.read(), WEIGHTS_NAME)
        if metadata.get("format", "pt") != "pt":
            raise ValueError(f"{folder}: __metadata__ format is {metadata['format']!r}, expected 'pt'")
        info = {"files": [WEIGHTS_NAME], "sharded": False}
    return config, tensors, info


def fix_key(key):
    """from_pretrained's renaming of old TF-style names (the whole key is searched)."""
    if "beta" in key:
        return key.replace("beta", "bias")
    if "gamma" in key:
        return key.replace("gamma", "weight")
    return key


def load_state_dict_into(model, checkpoint):
    """Loads `checkpoint` (name -> tensor) into `model` with from_pretrained's key handling; returns a report
    {"missing": [...], "unexpected": [...], "renamed": {old: new}, "prefix": "added" | "removed" | None}, names
    as the model's state_dict() spells them (missing) or as the checkpoint does (unexpected)."""
    renamed = {}
    loaded = collections.OrderedDict()
    for key, tensor in checkpoint.items():
        new = fix_key(key)
        if new != key:
            renamed[key] = new
        loaded[new] = tensor
    prefix = model.base_model_prefix
    target = model.state_dict()
    has_prefix_module = any(k.startswith(prefix) for k in loaded)
    expects_prefix_module = any(k.startswith(prefix) for k in target)
    remove_prefix_from_model = not has_prefix_module and expects_prefix_module  # bare checkpoint, head model
    add_prefix_to_model = has_prefix_module and not expects_prefix_module       # head checkpoint, bare model
    dotted = prefix + "."
    if remove_prefix_from_model:
        to_model = {k: dotted + k for k in loaded}
    elif add_prefix_to_model:
        to_model = {k: (k[len(dotted):] if k.startswith(dotted) else None) for k in loaded}
    else:
        to_model = {k: k for k in loaded}
    buffers = {name for name, _ in model.named_buffers()}  # non-persistent ones are not in state_dict()
    unexpected = sorted(k for k in loaded if to_model[k] not in target and to_model[k] not in buffers)
    found = {to_model[k] for k in loaded if to_model[k] in target}
    # A key tied to a loaded tensor (the MLM decoder, GPT-2's lm_head) is filled through that tensor.
    loaded_ptrs = {_storage_ptr(target[k]) for k in found}
    missing = sorted(k for k in target if k not in found and _storage_ptr(target[k]) not in loaded_ptrs)
    values = collections.OrderedDict((to_model[k], t.to(target[to_model[k]].dtype))
                                     for k, t in loaded.items() if to_model[k] in target)
    model.load_state_dict(values, strict=False)
    if hasattr(model, "tie_weights"):
        model.tie_weights()
    prefix_action = "removed" if remove_prefix_from_model else "added" if add_prefix_to_model else None
    return {"missing": missing, "unexpected": unexpected, "renamed": renamed, "prefix": prefix_action}


def model_class(name):
    import hf_bert
    import hf_gpt2
    classes = {"BertModel": hf_bert.BertModel, "BertForMaskedLM": hf_bert.BertForMaskedLM,
               "BertForSequenceClassification": hf_bert.BertForSequenceClassification,
               "BertForPreTraining": hf_bert.BertForPreTraining, "GPT2Model": hf_gpt2.GPT2Model,
               "GPT2LMHeadModel": hf_gpt2.GPT2LMHeadModel}
    if name not in classes:
        raise ValueError(f"model_class: no reference class for architecture {name!r}")
    return classes[name]


def from_pretrained(folder, architecture=None, dtype=torch.float32):
    """Builds the model named by `architecture` (default: config.json's architectures[0]) from a folder and loads
    its weights; returns (model in eval mode, load report). Weights are cast to `dtype` after loading."""
    config_dict, tensors, _ = read_folder(folder)
    cls = model_class(architecture or config_dict["architectures"][0])
    config = cls.config_class.from_dict(config_dict)
    torch.manual_seed(0)  # the initial values of weights the checkpoint lacks
    model = cls(config)
    report = load_state_dict_into(model, tensors)
    return model.to(dtype).eval(), report

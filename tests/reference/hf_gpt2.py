"""GPT-2 as Hugging Face transformers (4.46, modeling_gpt2.py and pytorch_utils.Conv1D) defines it, re-implemented
module by module in plain PyTorch, with the greedy decoding loop of generate().

Attribute names are transformers' own, so state_dict() keys are transformers' keys. Covered: the eager attention
path (causal mask, additive attention mask, key/value cache, scale_attn_weights, scale_attn_by_inverse_layer_idx,
reorder_and_upcast_attn), GPT2Model, GPT2LMHeadModel and GPT2PreTrainedModel._init_weights. Not covered:
cross-attention, head pruning, the sequence-classification and double-heads models.
"""

import math

import torch
from torch import nn
from torch.nn import functional as F

from hf_bert import Output, get_activation
from hf_folder import PretrainedConfig


class GPT2Config(PretrainedConfig):
    """transformers' GPT2Config: defaults of the 124M "gpt2" checkpoint."""

    model_type = "gpt2"
    attribute_map = {"hidden_size": "n_embd", "max_position_embeddings": "n_positions",
                     "num_attention_heads": "n_head", "num_hidden_layers": "n_layer"}

    def __init__(self, vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12, n_inner=None,
                 activation_function="gelu_new", resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.1,
                 layer_norm_epsilon=1e-5, initializer_range=0.02, summary_type="cls_index", summary_use_proj=True,
                 summary_activation=None, summary_proj_to_labels=True, summary_first_dropout=0.1,
                 scale_attn_weights=True, use_cache=True, bos_token_id=50256, eos_token_id=50256,
                 scale_attn_by_inverse_layer_idx=False, reorder_and_upcast_attn=False, **kwargs):
        self.vocab_size = vocab_size
        self.n_positions = n_positions
        self.n_embd = n_embd
        self.n_layer = n_layer
        self.n_head = n_head
        self.n_inner = n_inner
        self.activation_function = activation_function
        self.resid_pdrop = resid_pdrop
        self.embd_pdrop = embd_pdrop
        self.attn_pdrop = attn_pdrop
        self.layer_norm_epsilon = layer_norm_epsilon
        self.initializer_range = initializer_range
        self.summary_type = summary_type
        self.summary_use_proj = summary_use_proj
        self.summary_activation = summary_activation
        self.summary_first_dropout = summary_first_dropout
        self.summary_proj_to_labels = summary_proj_to_labels
        self.scale_attn_weights = scale_attn_weights
        self.use_cache = use_cache
        self.scale_attn_by_inverse_layer_idx = scale_attn_by_inverse_layer_idx
        self.reorder_and_upcast_attn = reorder_and_upcast_attn
        super().__init__(bos_token_id=bos_token_id, eos_token_id=eos_token_id, **kwargs)


class Conv1D(nn.Module):
    """A linear layer whose weight is stored (in, out), transposed from nn.Linear: y = x @ weight + bias."""

    def __init__(self, nf, nx):
        super().__init__()
        self.nf = nf
        self.weight = nn.Parameter(torch.empty(nx, nf))   # (in, out)
        self.bias = nn.Parameter(torch.zeros(nf))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, x):
        size_out = x.size()[:-1] + (self.nf,)
        return torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight).view(size_out)


class GPT2Attention(nn.Module):
    def __init__(self, config, layer_idx=None):
        super().__init__()
        max_positions = config.n_positions
        # Not saved (persistent=False); checkpoints of transformers up to 4.30 hold both, loading drops them.
        self.register_buffer("bias", torch.tril(torch.ones((max_positions, max_positions), dtype=torch.bool))
                             .view(1, 1, max_positions, max_positions), persistent=False)
        self.register_buffer("masked_bias", torch.tensor(-1e4), persistent=False)  # unused
        self.embed_dim = config.n_embd
        self.num_heads = config.n_head
        self.head_dim = self.embed_dim // self.num_heads
        self.split_size = self.embed_dim
        if self.head_dim * self.num_heads != self.embed_dim:
            raise ValueError(f"GPT2Attention: n_embd {self.embed_dim} is not a multiple of n_head {self.num_heads}")
        self.scale_attn_weights = config.scale_attn_weights
        self.scale_attn_by_inverse_layer_idx = config.scale_attn_by_inverse_layer_idx
        self.layer_idx = layer_idx
        self.reorder_and_upcast_attn = config.reorder_and_upcast_attn
        self.c_attn = Conv1D(3 * self.embed_dim, self.embed_dim)
        self.c_proj = Conv1D(self.embed_dim, self.embed_dim)
        self.attn_dropout = nn.Dropout(config.attn_pdrop)
        self.resid_dropout = nn.Dropout(config.resid_pdrop)

    def _attn(self, query, key, value, attention_mask=None):
        attn_weights = torch.matmul(query, key.transpose(-1, -2))               # (B, H, Tq, Tk)
        if self.scale_attn_weights:
            attn_weights = attn_weights / torch.full([], value.size(-1) ** 0.5, dtype=attn_weights.dtype)
        if self.scale_attn_by_inverse_layer_idx:
            attn_weights = attn_weights / float(self.layer_idx + 1)
        # Causal: query i of Tq new tokens sits at absolute position Tk - Tq + i and sees keys 0 .. that position.
        query_length, key_length = query.size(-2), key.size(-2)
        causal_mask = self.bias[:, :, key_length - query_length:key_length, :key_length]
        mask_value = torch.full([], torch.finfo(attn_weights.dtype).min, dtype=attn_weights.dtype)
        attn_weights = torch.where(causal_mask, attn_weights, mask_value)        # replaced, not added
        if attention_mask is not None:
            attn_weights = attn_weights + attention_mask  # then added: min + min = -inf where both apply
        attn_weights = F.softmax(attn_weights, dim=-1).type(value.dtype)
        attn_weights = self.attn_dropout(attn_weights)
        return torch.matmul(attn_weights, value), attn_weights

    def _upcast_and_reordered_attn(self, query, key, value, attention_mask=None):
        bsz, num_heads, q_seq_len, dk = query.size()
        k_seq_len = key.size(-2)
        scale_factor = 1.0
        if self.scale_attn_weights:
            scale_factor /= float(value.size(-1)) ** 0.5
        if self.scale_attn_by_inverse_layer_idx:
            scale_factor /= float(self.layer_idx + 1)
        q = query.reshape(-1, q_seq_len, dk).float()
        k = key.transpose(-1, -2).reshape(-1, dk, k_seq_len).float()
        attn_weights = torch.empty(bsz * num_heads, q_seq_len, k_seq_len, dtype=torch.float32)
        attn_weights = torch.baddbmm(attn_weights, q, k, beta=0, alpha=scale_factor)
        attn_weights = attn_weights.reshape(bsz, num_heads, q_seq_len, k_seq_len)
        causal_mask = self.bias[:, :, k_seq_len - q_seq_len:k_seq_len, :k_seq_len]
        mask_value = torch.tensor(torch.finfo(attn_weights.dtype).min, dtype=attn_weights.dtype)
        attn_weights = torch.where(causal_mask, attn_weights, mask_value)
        if attention_mask is not None:
            attn_weights = attn_weights + attention_mask
        attn_weights = F.softmax(attn_weights, dim=-1).type(value.dtype)
        attn_weights = self.attn_dropout(attn_weights)
        return torch.matmul(attn_weights, value), attn_weights

    def _split_heads(self, tensor):
        tensor = tensor.view(tensor.size()[:-1] + (self.num_heads, self.head_dim))
        return tensor.permute(0, 2, 1, 3)                                        # (B, H, T, D)

    def _merge_heads(self, tensor):
        tensor = tensor.permute(0, 2, 1, 3).contiguous()
        return tensor.view(tensor.size()[:-2] + (self.num_heads * self.head_dim,))

    def forward(self, hidden_states, layer_past=None, attention_mask=None, use_cache=False):
        query, key, value = self.c_attn(hidden_states).split(self.split_size, dim=2)  # q | k | v along C
        query, key, value = self._split_heads(query), self._split_heads(key), self._split_heads(value)
        if layer_past is not None:
            past_key, past_value = layer_past
            key = torch.cat((past_key, key), dim=-2)
            value = torch.cat((past_value, value), dim=-2)
        present = (key, value) if use_cache else None
        if self.reorder_and_upcast_attn:
            attn_output, _ = self._upcast_and_reordered_attn(query, key, value, attention_mask)
        else:
            attn_output, _ = self._attn(query, key, value, attention_mask)
        attn_output = self.resid_dropout(self.c_proj(self._merge_heads(attn_output)))
        return attn_output, present


class GPT2MLP(nn.Module):
    def __init__(self, intermediate_size, config):
        super().__init__()
        self.c_fc = Conv1D(intermediate_size, config.n_embd)
        self.c_proj = Conv1D(config.n_embd, intermediate_size)
        self.act = get_activation(config.activation_function)
        self.dropout = nn.Dropout(config.resid_pdrop)

    def forward(self, hidden_states):
        return self.dropout(self.c_proj(self.act(self.c_fc(hidden_states))))


class GPT2Block(nn.Module):
    """Pre-norm block: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, config, layer_idx=None):
        super().__init__()
        hidden_size = config.n_embd
        inner_dim = config.n_inner if config.n_inner is not None else 4 * hidden_size
        self.ln_1 = nn.LayerNorm(hidden_size, eps=config.layer_norm_epsilon)
        self.attn = GPT2Attention(config, layer_idx=layer_idx)
        self.ln_2 = nn.LayerNorm(hidden_size, eps=config.layer_norm_epsilon)
        self.mlp = GPT2MLP(inner_dim, config)

    def forward(self, hidden_states, layer_past=None, attention_mask=None, use_cache=False):
        attn_output, present = self.attn(self.ln_1(hidden_states), layer_past=layer_past,
                                         attention_mask=attention_mask, use_cache=use_cache)
        hidden_states = attn_output + hidden_states
        hidden_states = hidden_states + self.mlp(self.ln_2(hidden_states))
        return hidden_states, present


class GPT2PreTrainedModel(nn.Module):
    config_class = GPT2Config
    base_model_prefix = "transformer"
    _tied_weights_keys = None
    can_generate = False

    def __init__(self, config):
        super().__init__()
        self.config = config

    @property
    def dtype(self):
        return next(p.dtype for p in self.parameters() if p.is_floating_point())

    def _init_weights(self, module):
        """normal(0, initializer_range) weights, zero biases, LayerNorm 1 / 0, and every c_proj.weight (the two
        projections that write into the residual stream) normal(0, initializer_range / sqrt(2 n_layer))."""
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, Conv1D)):
            module.weight.data.normal_(mean=0.0, std=std)
            if module.bias is not None:
                module.bias.data.zero_()
        elif isinstance(module, nn.Embedding):
            module.weight.data.normal_(mean=0.0, std=std)
            if module.padding_idx is not None:
                module.weight.data[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)
        for name, p in module.named_parameters():
            if name == "c_proj.weight":
                p.data.normal_(mean=0.0, std=std / math.sqrt(2 * self.config.n_layer))

    def get_output_embeddings(self):
        return None

    def tie_weights(self):
        output_embeddings = self.get_output_embeddings()
        if output_embeddings is not None and self.config.tie_word_embeddings:
            output_embeddings.weight = self.transformer.wte.weight

    def post_init(self):
        self.apply(self._init_weights)  # children before parents, as nn.Module.apply goes
        self.tie_weights()


class GPT2Model(GPT2PreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.n_positions, config.n_embd)
        self.drop = nn.Dropout(config.embd_pdrop)
        self.h = nn.ModuleList([GPT2Block(config, layer_idx=i) for i in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.post_init()

    def forward(self, input_ids, past_key_values=None, attention_mask=None, token_type_ids=None, position_ids=None,
                use_cache=False):
        input_shape = input_ids.size()
        input_ids = input_ids.view(-1, input_shape[-1])
        batch_size = input_ids.shape[0]
        if past_key_values is None:
            past_length = 0
            past_key_values = tuple([None] * len(self.h))
        else:
            past_length = past_key_values[0][0].size(-2)
        if position_ids is None:
            position_ids = torch.arange(past_length, input_shape[-1] + past_length, dtype=torch.long)
            position_ids = position_ids.unsqueeze(0)
        else:
            position_ids = position_ids.view(-1, input_shape[-1])
        if attention_mask is not None:
            # (B, past + T) of 1 / 0 -> (B, 1, 1, past + T) of 0 / dtype min, added to every query row.
            attention_mask = attention_mask.view(batch_size, -1)[:, None, None, :].to(dtype=self.dtype)
            attention_mask = (1.0 - attention_mask) * torch.finfo(self.dtype).min
        hidden_states = self.wte(input_ids) + self.wpe(position_ids)
        if token_type_ids is not None:  # GPT-2 embeds token types with the token embedding matrix
            hidden_states = hidden_states + self.wte(token_type_ids.view(-1, input_shape[-1]))
        hidden_states = self.drop(hidden_states)
        presents = () if use_cache else None
        all_hidden_states = []
        for block, layer_past in zip(self.h, past_key_values):
            all_hidden_states.append(hidden_states)
            hidden_states, present = block(hidden_states, layer_past=layer_past, attention_mask=attention_mask,
                                           use_cache=use_cache)
            if use_cache:
                presents = presents + (present,)
        hidden_states = self.ln_f(hidden_states)
        all_hidden_states.append(hidden_states)
        return Output(last_hidden_state=hidden_states.view(input_shape + (hidden_states.size(-1),)),
                      past_key_values=presents, hidden_states=tuple(all_hidden_states))


class GPT2LMHeadModel(GPT2PreTrainedModel):
    _tied_weights_keys = ["lm_head.weight"]
    can_generate = True

    def __init__(self, config):
        super().__init__(config)
        self.transformer = GPT2Model(config)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)  # tied to transformer.wte
        self.post_init()

    def get_output_embeddings(self):
        return self.lm_head

    def forward(self, input_ids, past_key_values=None, attention_mask=None, token_type_ids=None, position_ids=None,
                labels=None, use_cache=False):
        outputs = self.transformer(input_ids, past_key_values=past_key_values, attention_mask=attention_mask,
                                   token_type_ids=token_type_ids, position_ids=position_ids, use_cache=use_cache)
        lm_logits = self.lm_head(outputs.last_hidden_state)                      # (B, T, V)
        loss = None
        if labels is not None:
            # Position t predicts token t + 1; labels -100 (CrossEntropyLoss's ignore_index) are left out.
            shift_logits = lm_logits[..., :-1, :].contiguous()
            shift_labels = labels[..., 1:].contiguous()
            loss = F.cross_entropy(shift_logits.view(-1, shift_logits.size(-1)), shift_labels.view(-1))
        return Output(loss=loss, logits=lm_logits, past_key_values=outputs.past_key_values,
                      hidden_states=outputs.hidden_states)


# ----------------------------------------------------------------------------------------------------------------
# generation

def generation_position_ids(attention_mask):
    """position_ids generate() passes for a (left-)padded batch: cumsum(mask) - 1, padding positions set to 1."""
    position_ids = attention_mask.long().cumsum(-1) - 1
    position_ids.masked_fill_(attention_mask == 0, 1)
    return position_ids


def prepare_inputs_for_generation(input_ids, past_key_values=None, attention_mask=None):
    """GPT2LMHeadModel.prepare_inputs_for_generation: with a cache only the last token goes in."""
    if past_key_values:
        input_ids = input_ids[:, -1].unsqueeze(-1)
    position_ids = None
    if attention_mask is not None:
        position_ids = generation_position_ids(attention_mask)
        if past_key_values:
            position_ids = position_ids[:, -1].unsqueeze(-1)
    return {"input_ids": input_ids, "past_key_values": past_key_values, "use_cache": True,
            "position_ids": position_ids, "attention_mask": attention_mask}


@torch.no_grad()
def greedy_generate(model, input_ids, attention_mask=None, max_new_tokens=20, eos_token_id=None, pad_token_id=None):
    """generate(do_sample=False, num_beams=1) with the key/value cache: each step feeds the last token, appends
    argmax of the last logits and a 1 to the attention mask. A finished row (eos seen) gets pad_token_id.
    Returns (sequences (B, T + new), list of the (B, V) logits each step chose from)."""
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    if pad_token_id is None:
        pad_token_id = eos_token_id
    sequences, past, step_logits = input_ids, None, []
    unfinished = torch.ones(input_ids.shape[0], dtype=torch.long)
    for _ in range(max_new_tokens):
        inputs = prepare_inputs_for_generation(sequences, past, attention_mask)
        outputs = model(**inputs)
        next_token_logits = outputs.logits[:, -1, :]
        step_logits.append(next_token_logits)
        next_tokens = torch.argmax(next_token_logits, dim=-1)
        if eos_token_id is not None:
            next_tokens = next_tokens * unfinished + pad_token_id * (1 - unfinished)
        sequences = torch.cat([sequences, next_tokens[:, None]], dim=-1)
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones((attention_mask.shape[0], 1))], dim=-1)
        past = outputs.past_key_values
        if eos_token_id is not None:
            unfinished = unfinished * (next_tokens != eos_token_id).long()
            if unfinished.max() == 0:
                break
    return sequences, step_logits

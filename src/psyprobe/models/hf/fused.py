"""Llama decoder layers computed with fewer passes over memory, for next-token scores on the
CPU.

transformers' layer (``LlamaDecoderLayer``) writes a fresh tensor at every elementwise step:
each norm's scale and weight, the rotary embedding's halves, their negation, concatenation,
products and sum, SiLU, the gate's product and both residual sums. Here the same arithmetic
is done in fewer passes, which saved 3–6 % of scoring's time where the products run at
AVX-512's rate (bench/RESULTS.md): each residual sum rides in its output
projection's product (``addmm``), SiLU and the gate's product overwrite the gate's output, the
norm's weight multiplies its scaled input in place, and the rotary embedding is one product
and two multiply-adds on the halves. The numbers are transformers' own up to float32 rounding
(tested to 1e-5).

Only a layer exactly as transformers builds it runs here: a layer with hooks on its modules
(steering vectors, ``_last_layer_at``), adapters, biases or another activation, a layer in
training, or any other architecture runs transformers' own code, as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import MethodType
from typing import Any

PROJECTIONS = (
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj",
)  # fmt: skip


@contextmanager
def fused_layers(model: Any) -> Iterator[None]:
    """``model``'s Llama decoder layers compute with ``_forward`` while this is open (each call
    checked by ``_as_built``), with transformers' own code again after."""
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer

    layers = [m for m in model.modules() if type(m) is LlamaDecoderLayer]
    for layer in layers:
        layer.forward = MethodType(_forward, layer)  # an attribute of this layer alone
    try:
        yield
    finally:
        for layer in layers:  # (another walk may have ended first, or opened inside)
            layer.__dict__.pop("forward", None)


def _as_built(layer: Any) -> bool:
    """Whether ``layer`` computes exactly what ``_forward`` does: plain bias-free projections,
    SiLU, no hook on any of its modules (a hook on the layer itself still runs: it wraps the
    call), not training."""
    import torch
    from transformers.activations import SiLUActivation

    modules = [m for m in layer.modules() if m is not layer]
    return (
        not layer.training
        and type(layer.mlp.act_fn) in (SiLUActivation, torch.nn.SiLU)
        and all(type(layer.get_submodule(name)) is torch.nn.Linear for name in PROJECTIONS)
        and all(layer.get_submodule(name).bias is None for name in PROJECTIONS)
        and not any(m._forward_hooks or m._forward_pre_hooks for m in modules)
    )


def _normed(x: Any, norm: Any) -> Any:
    """transformers' RMSNorm: the scale in float32, the weight in the model's dtype."""
    import torch

    wide = x.float()
    scale = torch.rsqrt(wide.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon)
    return (wide * scale).to(x.dtype).mul_(norm.weight)


def _rotated(x: Any, cos: Any, sin: Any) -> Any:
    """The rotary embedding of ``x`` (batch, tokens, heads, head size): x·cos + rotate_half(x)·sin,
    where rotate_half(x) is (−second half, first half)."""
    half = x.shape[-1] // 2
    out = x * cos
    out[..., :half].addcmul_(x[..., half:], sin[..., :half], value=-1)
    out[..., half:].addcmul_(x[..., :half], sin[..., half:])
    return out


def _forward(
    self: Any,
    hidden_states: Any,
    attention_mask: Any = None,
    position_ids: Any = None,
    cache: Any = None,
    use_cache: bool | None = False,
    position_embeddings: Any = None,
    **kwargs: Any,
) -> Any:
    """``LlamaDecoderLayer.forward``, in fewer passes (the module's docstring)."""
    import torch
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
    from transformers.models.llama.modeling_llama import (
        LlamaDecoderLayer,
        eager_attention_forward,
    )

    if not _as_built(self):
        return LlamaDecoderLayer.forward(
            self, hidden_states, attention_mask=attention_mask, position_ids=position_ids,
            cache=cache, use_cache=use_cache, position_embeddings=position_embeddings, **kwargs,
        )  # fmt: skip
    attn, mlp = self.self_attn, self.mlp
    batch, tokens, width = hidden_states.shape
    size = attn.head_dim
    x = _normed(hidden_states, self.input_layernorm)
    cos, sin = (t[:, :, None] for t in position_embeddings)  # against (batch, tokens, heads, size)

    def heads(projection: Any) -> Any:
        return projection(x).view(batch, tokens, -1, size)

    query = _rotated(heads(attn.q_proj), cos, sin).transpose(1, 2)
    key = _rotated(heads(attn.k_proj), cos, sin).transpose(1, 2)
    value = heads(attn.v_proj).transpose(1, 2)
    # what transformers' attention hands on: the layer's arguments but the states and mask
    kwargs = {"position_ids": position_ids, "use_cache": use_cache, **kwargs}
    if cache is not None:
        key, value = cache.update(key, value, attn.layer_idx, kwargs=kwargs)
    interface = ALL_ATTENTION_FUNCTIONS.get_interface(
        attn.config._attn_implementation, eager_attention_forward
    )
    out, _ = interface(
        attn, query, key, value, attention_mask, dropout=0.0, scaling=attn.scaling, **kwargs
    )
    residual = hidden_states.reshape(batch * tokens, width)
    residual = torch.addmm(residual, out.reshape(batch * tokens, -1), attn.o_proj.weight.t())
    x = _normed(residual, self.post_attention_layernorm)
    gate = mlp.gate_proj(x)
    torch.nn.functional.silu(gate, inplace=True)
    gate.mul_(mlp.up_proj(x))
    return torch.addmm(residual, gate, mlp.down_proj.weight.t()).view(batch, tokens, width)

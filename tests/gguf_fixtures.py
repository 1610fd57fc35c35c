"""Tiny GGUF files written on the spot with the `gguf` package (no download): a random Llama and its byte-level BPE
ChatML tokenizer, laid out as llama.cpp's converter writes them, so that converting back must give the same
logits and the same tokens. Test modules import them: `from gguf_fixtures import tiny_gguf, write_gguf`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import make_tokenizer, tiny_llama

# HF Llama module -> llama.cpp tensor name (blk.<i>.<name>.weight).
LAYER_TENSORS = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
                 "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                 "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}
TOP_TENSORS = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
               "lm_head.weight": "output.weight"}


def _rope_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's q/k row order (its convert_hf_to_gguf.py `permute`), which transformers undoes on load."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_tensors(model) -> dict[str, np.ndarray]:
    cfg, out = model.config, {}
    for name, t in model.state_dict().items():
        a = t.detach().float().numpy()
        if name in TOP_TENSORS:
            out[TOP_TENSORS[name]] = a
            continue
        _, _, layer, rest = name.split(".", 3)
        module = rest.rsplit(".", 1)[0]
        heads = {"self_attn.q_proj": cfg.num_attention_heads, "self_attn.k_proj": cfg.num_key_value_heads}
        out[f"blk.{layer}.{LAYER_TENSORS[module]}.weight"] = _rope_permute(a, heads[module]) if module in heads else a
    return out


def write_gguf(path: Path, model=None, tokenizer=None, architecture: str = "llama", tensor_type=None,
               raw_tensors: dict | None = None) -> Path:
    """A GGUF file of `model` + `tokenizer` (float32, or `tensor_type` for 2-D weights); with no model, the header
    only (for errors met before any weight). raw_tensors: name -> (uint8 bytes array, GGML type) added as they are."""
    import gguf

    w = gguf.GGUFWriter(str(path), architecture)
    w.add_name(f"tiny {architecture}")
    if model is not None:
        cfg = model.config
        w.add_context_length(cfg.max_position_embeddings)
        w.add_embedding_length(cfg.hidden_size)
        w.add_block_count(cfg.num_hidden_layers)
        w.add_feed_forward_length(cfg.intermediate_size)
        w.add_head_count(cfg.num_attention_heads)
        w.add_head_count_kv(cfg.num_key_value_heads)
        w.add_rope_freq_base(cfg.rope_parameters["rope_theta"])
        w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
        w.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
        w.add_vocab_size(cfg.vocab_size)
    if tokenizer is not None:
        backend = json.loads(tokenizer.backend_tokenizer.to_str())
        vocab, added = backend["model"]["vocab"], {a["content"] for a in backend["added_tokens"]}
        tokens = sorted(vocab, key=vocab.get)
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("default")
        w.add_token_list(tokens)
        w.add_token_types([gguf.TokenType.CONTROL if t in added else gguf.TokenType.NORMAL for t in tokens])
        w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in backend["model"]["merges"]])
        w.add_eos_token_id(tokenizer.eos_token_id)
        w.add_pad_token_id(tokenizer.pad_token_id)
        w.add_chat_template(tokenizer.chat_template)
    for name, a in (gguf_tensors(model) if model is not None else {}).items():
        if name in (raw_tensors or {}):
            continue
        if tensor_type is not None and a.ndim == 2:
            w.add_tensor(name, gguf.quantize(a, tensor_type), raw_dtype=tensor_type)
        else:
            w.add_tensor(name, np.ascontiguousarray(a))
    for name, (data, kind) in (raw_tensors or {}).items():
        w.add_tensor(name, data, raw_dtype=kind)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def tiny_pair(seed: int = 3):
    tokenizer = make_tokenizer("chatml")
    return tiny_llama(len(tokenizer), seed=seed), tokenizer


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory):
    """(GGUF file, the HF model it holds, its tokenizer): a random ~30k-parameter Llama, float32."""
    model, tokenizer = tiny_pair()
    return write_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf", model, tokenizer), model, tokenizer

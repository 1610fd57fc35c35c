"""Assistant masks on real-world chat templates (ChatML, Llama-3, Zephyr, Phi-3, Gemma)."""

import pytest
from conftest import make_tokenizer

from poft.chat import IGNORE_INDEX, ChatTemplateError, TokenizationReport, response_only, tokenize_chat

EOT = {"chatml": "<|im_end|>", "llama3": "<|eot_id|>", "zephyr": "</s>", "phi3": "<|end|>", "gemma": "<end_of_turn>"}


@pytest.mark.parametrize("name", sorted(EOT))
def test_labels_are_exactly_assistant_contents_and_end_of_turn(name, conversation):
    tok = make_tokenizer(name)
    out = tokenize_chat(tok, conversation)
    labelled = [i for i in out.labels if i != IGNORE_INDEX]
    assert tok.decode(labelled) == f"2 + 3 = 5.{EOT[name]}assistant{EOT[name]}"
    # Each labelled run decodes to one turn: the two turns are separate, not one span across the user turn.
    runs, current = [], []
    for i, lab in zip(out.input_ids, out.labels):
        if lab != IGNORE_INDEX:
            current.append(i)
        elif current:
            runs.append(tok.decode(current))
            current = []
    runs += [tok.decode(current)] if current else []
    assert runs == [f"2 + 3 = 5.{EOT[name]}", f"assistant{EOT[name]}"]
    assert all(lab in (IGNORE_INDEX, i) for i, lab in zip(out.input_ids, out.labels))


@pytest.mark.parametrize("name", sorted(EOT))
def test_bos_exactly_once(name, conversation):
    tok = make_tokenizer(name)
    ids = tokenize_chat(tok, conversation).input_ids
    n_bos = ids.count(tok.bos_token_id) if tok.bos_token_id is not None else 0
    assert n_bos == (0 if name == "chatml" else 1)  # gemma/llama3 render it, zephyr/phi3 get it added
    if name != "chatml":
        assert ids[0] == tok.bos_token_id


def test_llama3_trimmed_content_is_found():
    tok = make_tokenizer("llama3")
    conv = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "  Hello there  \n"}]
    out = tokenize_chat(tok, conv)
    assert tok.decode([i for i in out.labels if i != IGNORE_INDEX]) == "Hello there<|eot_id|>"


def test_truncation_is_counted_and_keeps_prefix(chatml_tokenizer, conversation):
    full = tokenize_chat(chatml_tokenizer, conversation)
    cut = tokenize_chat(chatml_tokenizer, conversation, max_length=len(full.input_ids) - 3)
    assert cut.truncated and not full.truncated
    assert cut.input_ids == full.input_ids[:-3]
    assert cut.n_label_tokens < full.n_label_tokens
    tiny = tokenize_chat(chatml_tokenizer, conversation, max_length=5)
    report = TokenizationReport()
    for sid, t in (("a", full), ("b", cut), ("c", tiny)):
        report.add(sid, t)
    assert report.to_dict() == {"n_samples": 3, "n_truncated": 2, "n_no_labels": 1, "truncated_ids_first_50": ["b", "c"]}


def test_template_without_end_of_turn_token_is_refused(conversation):
    tok = make_tokenizer("chatml")
    tok.chat_template = "{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\n' }}{% endfor %}"
    with pytest.raises(ChatTemplateError, match="puts no special token after an assistant turn"):
        tokenize_chat(tok, conversation)


def test_missing_template_is_refused(conversation):
    tok = make_tokenizer("chatml")
    tok.chat_template = None
    with pytest.raises(ChatTemplateError, match="has no chat_template"):
        tokenize_chat(tok, conversation)


def test_response_only_labels_every_response_token(conversation):
    tok = make_tokenizer("llama3")
    out = response_only(tok, conversation)
    assert out.input_ids[0] == tok.bos_token_id and out.labels[0] == IGNORE_INDEX
    assert tok.decode(out.labels[1:]) == "2 + 3 = 5.\n\nassistant"

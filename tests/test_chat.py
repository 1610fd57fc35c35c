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


def test_reply_is_never_found_inside_a_later_user_turn():
    """The Llama-3 template trims content, so the reply "Yes " renders as "Yes". Searching for "Yes " after the
    prompt found it in the next user turn ("Yes sure, and 9?") and labelled the user's text; the reply must be
    taken where the rendered prompt ends."""
    tok = make_tokenizer("llama3")
    conv = [{"role": "user", "content": "Is 7 prime?"}, {"role": "assistant", "content": "Yes "},
            {"role": "user", "content": "Yes sure, and 9?"}, {"role": "assistant", "content": "No."}]
    out = tokenize_chat(tok, conv)
    runs, current = [], []
    for i, lab in zip(out.input_ids + [None], out.labels + [IGNORE_INDEX]):
        if lab != IGNORE_INDEX:
            current.append(i)
        elif current:
            runs, current = runs + [tok.decode(current)], []
    assert runs == ["Yes<|eot_id|>", "No.<|eot_id|>"]


@pytest.mark.parametrize("name", sorted(EOT))
def test_replies_with_surrounding_whitespace_are_labelled_where_they_stand(name):
    tok = make_tokenizer(name)
    conv = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": " Hello there \n"},
            {"role": "user", "content": "Hello there again"}, {"role": "assistant", "content": "\nBye."}]
    out = tokenize_chat(tok, conv)
    text = tok.decode([i for i in out.labels if i != IGNORE_INDEX])
    assert text.replace(" ", "").replace("\n", "") == f"Hellothere{EOT[name]}Bye.{EOT[name]}"


def test_template_that_rewrites_history_is_refused():
    """A reply can only be located where the prompt ends; a template whose rendering of the history changes
    once the reply is appended gets a ChatTemplateError naming the turn, never a guess."""
    tok = make_tokenizer("chatml")
    tok.chat_template = ("{% for m in messages %}{% if loop.last %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
                         "<|im_end|>\n{% else %}[{{ m['role'] }}] {{ m['content'] }}<|im_end|>\n{% endif %}"
                         "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    conv = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    with pytest.raises(ChatTemplateError, match="assistant turn 1: the rendering .* is not a prefix"):
        tokenize_chat(tok, conv)


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
    tok.chat_template = ("{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\n' }}{% endfor %}"
                         "{% if add_generation_prompt %}assistant: {% endif %}")
    with pytest.raises(ChatTemplateError, match="puts no special token after an assistant turn"):
        tokenize_chat(tok, conversation)


def test_missing_template_is_refused(conversation):
    tok = make_tokenizer("chatml")
    tok.chat_template = None
    with pytest.raises(ChatTemplateError, match="has no chat_template"):
        tokenize_chat(tok, conversation)


@pytest.mark.parametrize("name", sorted(EOT))
def test_response_only_scores_exactly_the_conversations_labelled_tokens(name, conversation):
    """IFD's two losses must cover the same tokens: the response-alone sequence is one start token followed by
    the conversation's labelled ids (contents and end-of-turn tokens), also after truncation."""
    tok = make_tokenizer(name)
    for max_length in (None, len(tokenize_chat(tok, conversation).input_ids) - 2):
        chat = tokenize_chat(tok, conversation, max_length)
        out = response_only(tok, chat)
        labelled = [lab for t, lab in enumerate(chat.labels) if lab != IGNORE_INDEX and t > 0]
        assert out.input_ids[0] == (tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id)
        assert out.labels == [IGNORE_INDEX, *labelled] and out.input_ids[1:] == labelled
        assert out.n_label_tokens == chat.n_label_tokens and out.truncated == chat.truncated
    full = response_only(tok, tokenize_chat(tok, conversation))
    assert tok.decode(full.labels[1:]) == f"2 + 3 = 5.{EOT[name]}assistant{EOT[name]}"

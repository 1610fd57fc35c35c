"""poft.templates: registry names and Jinja files resolve; unknown names fail with the valid list; an applied
template renders what the handbook / Mistral formats render, and poft.chat still refuses a template that never
ends an assistant turn with a special token."""

import pytest
from conftest import make_tokenizer

from poft.chat import ChatTemplateError, assistant_char_spans, render, tokenize_chat
from poft.templates import CHAT_TEMPLATES, apply_chat_template, resolve_chat_template, template_file

PING = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]


def test_registry_names_resolve_to_their_jinja():
    assert {"chatml", "zephyr", "llama3", "mistral"} <= set(CHAT_TEMPLATES)
    assert resolve_chat_template("zephyr") is CHAT_TEMPLATES["zephyr"]
    assert template_file("zephyr") is None


@pytest.mark.parametrize("name", ["mine.jinja", "mine.j2", "mine.txt"])
def test_a_file_resolves_to_its_text(tmp_path, name):
    path = tmp_path / name
    path.write_text("{% for m in messages %}{{ m['content'] + eos_token }}{% endfor %}")
    assert resolve_chat_template(str(path)) == path.read_text()
    assert template_file(str(path)) == path


def test_unknown_name_lists_the_valid_ones_and_says_a_file_works():
    with pytest.raises(KeyError) as e:
        resolve_chat_template("zephir")
    assert e.value.args[0] == ("unknown chat template 'zephir'; valid: chatml, gemma, llama3, mistral, phi3, zephyr, "
                               "or the path of a Jinja file")


def test_missing_or_empty_template_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="chat template file not found: .*nowhere.jinja"):
        resolve_chat_template(str(tmp_path / "nowhere.jinja"))
    (tmp_path / "empty.jinja").write_text("\n")
    with pytest.raises(ValueError, match="empty.jinja is empty"):
        resolve_chat_template(str(tmp_path / "empty.jinja"))


def test_zephyr_renders_the_handbook_format_and_labels_reply_plus_eos():
    tok = make_tokenizer("chatml")  # a template of its own, replaced
    tok.add_special_tokens({"eos_token": "</s>"})
    apply_chat_template(tok, "zephyr")
    text, spans = assistant_char_spans(tok, PING)
    assert text == "<|user|>\nhi</s>\n<|assistant|>\nhello</s>\n"
    assert [text[a:b] for a, b in spans] == ["hello</s>"]


def test_mistral_renders_inst_with_bos_once():
    tok = make_tokenizer("zephyr")  # <s> / </s>, and a tokenizer that prepends BOS itself
    apply_chat_template(tok, "mistral")
    assert render(tok, PING) == "<s>[INST] hi [/INST]hello</s>"
    ids = tokenize_chat(tok, PING).input_ids
    assert ids[0] == tok.bos_token_id and ids[1] != tok.bos_token_id


def test_none_keeps_the_tokenizers_own():
    tok = make_tokenizer("llama3")
    own = tok.chat_template
    assert apply_chat_template(tok, None).chat_template == own


def test_a_template_that_never_ends_the_turn_is_still_refused(tmp_path):
    path = tmp_path / "plain.jinja"
    path.write_text("{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\n' }}{% endfor %}"
                    "{% if add_generation_prompt %}assistant: {% endif %}")
    tok = apply_chat_template(make_tokenizer("zephyr"), str(path))
    with pytest.raises(ChatTemplateError, match="puts no special token after an assistant turn"):
        tokenize_chat(tok, PING)

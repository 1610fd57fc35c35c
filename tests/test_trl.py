"""poft.trl: TRL's SFTTrainer with PoFT's loss gives what poft's own trainer gives, and TRL's traps are handled.

The traps (TRL 1.16): its loss comes from a fused LM head that returns no logits; it drops dataset columns the model
does not take, and its collator every key it does not know; gradient accumulation must not scale a per-sample mean
twice; a padding-free row holds several samples, split where position_ids restart at 0.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import make_tokenizer, tiny_llama
from datasets import Dataset
from test_scoring import make_conversations
from test_training import merged_scores
from trl import SFTConfig, SFTTrainer

from poft.chat import IGNORE_INDEX, tokenize_chat
from poft.io import write_json
from poft.losses import poft_objective
from poft.training import ChatCollator, TrainSpec, build_examples, objective_inputs
from poft.trl import PoFTConfig, PoFTTrainer, attach_scores, poft_batch, sample_index

REPO = Path(__file__).resolve().parents[1]
# ChatML with {% generation %} markers around each assistant turn's content and its <|im_end|>: TRL's
# assistant_only_loss then labels exactly what poft.chat labels (assistant content + end-of-turn token), which the
# tests check token by token rather than assume.
CHATML_WITH_GENERATION = (
    "{% for message in messages %}{% if message['role'] == 'assistant' %}{{ '<|im_start|>assistant\n' }}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\n' }}"
    "{% else %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def tokenizer():
    tok = make_tokenizer("chatml")
    tok.chat_template = CHATML_WITH_GENERATION
    return tok


def scored_dataset(convs, scores=None) -> Dataset:
    """`messages` and `id`, plus each sample's mean aligned score (the merged file's `score`)."""
    by_id = {r["id"]: r["score"] for r in (scores or merged_scores(convs))["rows"]}
    return Dataset.from_list([{**c, "aligned_score": by_id[c["id"]]} for c in convs])


def trainer_for(model, tok, dataset, out, padding_free=False, **options) -> PoFTTrainer:
    base = dict(output_dir=str(out), assistant_only_loss=True, padding_free=padding_free,
                max_length=None if padding_free else 512, report_to=[], use_cpu=True, save_strategy="no",
                per_device_train_batch_size=4, learning_rate=3e-3, lr_scheduler_type="constant", warmup_steps=0,
                logging_steps=1, seed=7, disable_tqdm=True,
                bf16=False)  # TRL turns bf16 on by default (autocast on CPU too): these comparisons are float32
    return PoFTTrainer(model=model, args=PoFTConfig(**{**base, **options}), train_dataset=dataset,
                       processing_class=tok)


def trl_batch(trainer, ids):
    """TRL's batch (its tokenization, its collator, ours around it) of the samples `ids`, in that order."""
    prepared = {row["id"]: row for row in trainer.train_dataset}
    return trainer._prepare_inputs(trainer.data_collator([prepared[i] for i in ids]))


@pytest.mark.parametrize("target_tokens", ["response", "full_sequence"])
@pytest.mark.parametrize("padding_free", [False, True])
def test_same_loss_and_gradients_as_poft_trainer(tmp_path, padding_free, target_tokens):
    """TRL's pipeline (messages -> its tokenization with assistant masks -> its collator -> PoFTTrainer.compute_loss)
    against poft's (tokenize_chat -> ChatCollator -> objective_inputs + poft_objective) on the same 6 conversations,
    same weights, beta and gamma off the paper's defaults so that they are seen to be passed.

    Fed as `messages`, so that TRL's own tokenization is what is tested; the template's {% generation %} markers make
    TRL label what poft labels, and the test first checks that both sides label the very same tokens. Padded batches
    against poft's padded layout, padding-free ones (one row) against poft's one-row layout."""
    tok = tokenizer()
    convs = make_conversations(6)
    scores = merged_scores(convs)
    beta, gamma = 2.0, 0.5

    examples, _ = build_examples(convs, tok, 512, scores)
    poft_model = tiny_llama(len(tok), seed=2).train()
    batch = ChatCollator(tok.pad_token_id, "one_row" if padding_free else "padded")(examples)
    batch.pop("sample_ids")
    spec = TrainSpec(loss="poft", beta=beta, gamma=gamma, target_tokens=target_tokens)
    expected, _ = poft_objective(objective_inputs(poft_model, poft_model, batch, spec), beta, gamma)
    expected.backward()

    trl_model = tiny_llama(len(tok), seed=2).train()
    trainer = trainer_for(trl_model, tok, scored_dataset(convs, scores), tmp_path, padding_free=padding_free,
                          beta=beta, gamma=gamma, target_tokens=target_tokens)
    for row in trainer.train_dataset:  # both sides label the same tokens
        ours = tokenize_chat(tok, row["messages"])
        assert (row["input_ids"], row["labels"]) == (ours.input_ids, ours.labels), row["id"]
    inputs = trl_batch(trainer, [c["id"] for c in convs])
    assert ("attention_mask" not in inputs) == padding_free  # padding-free: one row, samples told by position_ids
    loss = trainer.compute_loss(trl_model, inputs)
    loss.backward()

    torch.testing.assert_close(loss, expected, rtol=0, atol=1e-6)
    for (name, p), q in zip(trl_model.named_parameters(), poft_model.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=1e-6, msg=name)


def test_trl_fused_head_returns_no_logits_so_poft_computes_its_own(tmp_path):
    """Trap 1: TRL 1.16 patches the model with a fused LM head (per-token log-probs of the labels, no logits) and takes
    its loss as a token sum. PoFT needs each sample's mean log-likelihood: compute_loss must equal Eq. 5 computed
    naively, from each conversation's full-vocabulary log-softmax (float64, one sample at a time)."""
    tok = tokenizer()
    convs = make_conversations(5, seed=3)
    model = tiny_llama(len(tok), seed=4).eval()
    trainer = trainer_for(model, tok, scored_dataset(convs), tmp_path)
    inputs = trl_batch(trainer, [c["id"] for c in convs])
    fused = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], labels=inputs["labels"],
                  fused_lm_head=True)
    assert getattr(fused, "logits", None) is None and fused.log_probs is not None

    policy = []
    for c in convs:
        chat = tokenize_chat(tok, c["messages"])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=torch.tensor([chat.input_ids])).logits[0].double(), -1)
        picked = [logp[t - 1, y] for t, y in enumerate(chat.labels) if t > 0 and y != IGNORE_INDEX]
        policy.append(torch.stack(picked).mean())
    aligned = torch.tensor(inputs["aligned_scores"].tolist(), dtype=torch.float64)
    naive = -F.logsigmoid(torch.stack(policy) - aligned).mean()
    with torch.no_grad():
        loss = trainer.compute_loss(model, inputs)
    assert float(loss) == pytest.approx(float(naive), abs=1e-5)


@pytest.mark.parametrize("padding_free", [False, True])
def test_aligned_scores_survive_column_removal_and_collator(tmp_path, padding_free):
    """Trap 2: with remove_unused_columns (TRL's default) TRL keeps only input_ids / labels / seq_lengths, and its
    collator drops unknown keys: a plain SFTTrainer's batches have no scores. PoFTTrainer's training batches carry
    each sample's own score, in the batch's sample order (matched here by the tokens of each sample)."""
    tok = tokenizer()
    convs = make_conversations(6, seed=1)
    dataset = scored_dataset(convs)

    plain = SFTTrainer(model=tiny_llama(len(tok)), processing_class=tok, train_dataset=dataset,
                       args=SFTConfig(output_dir=str(tmp_path / "sft"), assistant_only_loss=True, report_to=[],
                                      use_cpu=True, per_device_train_batch_size=6))
    assert "aligned_score" not in next(iter(plain.get_train_dataloader()))

    trainer = trainer_for(tiny_llama(len(tok)), tok, dataset, tmp_path / "poft", padding_free=padding_free,
                          per_device_train_batch_size=6)
    assert trainer.args.remove_unused_columns
    score_of = {tuple(r["input_ids"]): r["aligned_score"] for r in trainer.train_dataset}
    batch = next(iter(trainer.get_train_dataloader()))
    index = sample_index(batch)
    got = {tuple(batch["input_ids"][index == k].tolist()): float(s) for k, s in enumerate(batch["aligned_scores"])}
    assert got == pytest.approx(score_of) and len(got) == 6


@pytest.mark.parametrize("padding_free", [False, True])
def test_accumulated_micro_batches_train_as_one_batch(tmp_path, padding_free):
    """Trap 3: batch 8 and 2 accumulated micro-batches of 4 end with the same weights. PoFT's loss is a mean over
    samples; each micro-batch's mean is scaled to its share of the step's samples (and Trainer told not to divide by
    the accumulation steps again). 13 conversations: the last step holds 5 samples, as micro-batches of 4 and 1,
    where averaging per micro-batch would weigh the lone sample 4 times too much. Plain SGD, no clipping: Adam would
    hide a loss scaled twice (it is blind to a uniform scale of the gradient)."""
    tok = tokenizer()
    convs = make_conversations(13, seed=4)
    final = {}
    for name, (batch, accumulate) in {"one": (8, 1), "accumulated": (4, 2)}.items():
        model = tiny_llama(len(tok), seed=6)
        trainer = trainer_for(model, tok, scored_dataset(convs), tmp_path / name, padding_free=padding_free,
                              per_device_train_batch_size=batch, gradient_accumulation_steps=accumulate,
                              num_train_epochs=1, optim="sgd", learning_rate=0.1, max_grad_norm=0)
        trainer.train()
        assert trainer.state.global_step == 2
        final[name] = model.state_dict()
    for k, v in final["one"].items():
        torch.testing.assert_close(final["accumulated"][k], v, rtol=0, atol=1e-5, msg=k)


@pytest.mark.slow
def test_ranks_and_accumulation_train_as_one_batch(tmp_path):
    """Trap 3 under DDP: 2 ranks (torchrun, gloo on CPU) x micro-batches of 2 x 2 accumulation steps end with the
    weights of one process at batch 8: the step's samples are counted over the accumulation steps and the ranks, and
    each rank's share is multiplied by the ranks that DDP averages the gradients over. Plain SGD (see above)."""
    worker = str(REPO / "tests" / "trl_ddp_worker.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    runs = {"one": [sys.executable, worker, "8", "1"],
            "ranks": [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", worker, "2", "2"]}
    final = {}
    for name, command in runs.items():
        done = subprocess.run([*command, str(tmp_path / name)], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        final[name] = torch.load(tmp_path / name / "final.pt")
    assert (final["one"]["world_size"], final["ranks"]["world_size"]) == (1, 2)
    assert final["one"]["steps"] == final["ranks"]["steps"] == 2
    for k, v in final["one"]["weights"].items():
        torch.testing.assert_close(final["ranks"]["weights"][k], v, rtol=0, atol=1e-5, msg=k)


def test_padding_free_samples_split_at_position_zero(tmp_path):
    """Trap 4: in a padding-free row, sample k is the k-th run of position_ids starting at 0 (padding to a multiple
    is no sample), and a sample's first token is never predicted from the previous sample's last one — even when a
    collator leaves it labelled; with it labelled, the loss would differ."""
    tok = tokenizer()
    convs = make_conversations(4, seed=2)
    model = tiny_llama(len(tok), seed=1).eval()
    trainer = trainer_for(model, tok, scored_dataset(convs), tmp_path, padding_free=True, pad_to_multiple_of=64)
    ids = [c["id"] for c in convs]
    inputs = trl_batch(trainer, ids)
    lengths = [len(tokenize_chat(tok, c["messages"]).input_ids) for c in convs]
    width = inputs["input_ids"].shape[1]
    assert width % 64 == 0 and width > sum(lengths)
    expected = torch.repeat_interleave(torch.arange(4), torch.tensor(lengths)).tolist() + [-1] * (width - sum(lengths))
    assert sample_index(inputs)[0].tolist() == expected

    leaky = {**inputs, "labels": inputs["labels"].clone()}
    starts = (inputs["position_ids"] == 0) & (sample_index(inputs) >= 0)
    leaky["labels"][starts] = inputs["input_ids"][starts]  # what a collator that does not mask them would give
    with torch.no_grad():
        loss = trainer.compute_loss(model, inputs)
        assert torch.equal(trainer.compute_loss(model, leaky), loss)
        spec = TrainSpec(loss="poft")
        unmasked = {**poft_batch(leaky), "labels": leaky["labels"]}
        wrong, _ = poft_objective(objective_inputs(model, model, unmasked, spec))
    assert not torch.allclose(wrong, loss)


@pytest.mark.slow  # ~1 s on an idle core; 15-24 s measured on the shared 2-core machine
def test_twenty_steps_lower_the_loss(tmp_path):
    tok = tokenizer()
    convs = make_conversations(16, seed=5)
    dataset = scored_dataset(convs)
    trainer = trainer_for(tiny_llama(len(tok), seed=3), tok, dataset, tmp_path, max_steps=20, padding_free=True,
                          eval_strategy="no")
    before = trainer.evaluate(dataset)["eval_loss"]
    trainer.train()
    after = trainer.evaluate(dataset)["eval_loss"]
    assert trainer.state.global_step == 20
    assert after < before - 0.3, (before, after)
    logged = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logged) == 20 and all({"ce", "tau", "policy_score", "aligned_score", "num_tokens"} <= set(h)
                                     for h in logged)


def test_a_sample_without_target_tokens_is_an_error(tmp_path):
    """Its r_theta would be NaN (a mean over no tokens), and the NaN would reach every weight through the batch mean."""
    tok = tokenizer()
    convs = make_conversations(3)
    model = tiny_llama(len(tok))
    trainer = trainer_for(model, tok, scored_dataset(convs), tmp_path)
    inputs = trl_batch(trainer, [c["id"] for c in convs])
    inputs["labels"][1] = IGNORE_INDEX
    with pytest.raises(ValueError, match="1 of the batch's 3 samples have no target token"):
        trainer.compute_loss(model, inputs)


@pytest.mark.slow
def test_example_script_runs_as_written(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "examples" / "trl_poft.py"), "--out", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["steps"] == 16 and result["last_logged_loss"] < result["first_logged_loss"]


def write_scores(path, rows):
    write_json(path, {"meta": {"kind": "aligned", "models": ["A"]}, "rows": rows})
    return path


def test_attach_scores_adds_the_column_and_names_what_is_missing(tmp_path):
    ds = Dataset.from_list([{"id": "a", "messages": []}, {"id": "b", "messages": []}, {"id": "c", "messages": []}])
    scores = write_scores(tmp_path / "merged.json", [{"id": "a", "score": -1.5}, {"id": "b", "score": None},
                                                     {"id": "c", "score": -2.0}])
    with pytest.raises(ValueError, match=rf"sample id 'b' has a null score in {tmp_path}/merged.json"):
        attach_scores(ds, scores)
    kept = attach_scores(ds, scores, drop_unscored=True)
    assert kept["id"] == ["a", "c"] and kept["aligned_score"] == [-1.5, -2.0]
    assert "1 unscored samples dropped" in kept.info.description
    assert attach_scores(ds.select([0, 2]), scores, column="r")["r"] == [-1.5, -2.0]

    short = write_scores(tmp_path / "short.json", [{"id": "a", "score": -1.0}])
    for drop in (False, True):
        with pytest.raises(KeyError, match=rf"sample id 'b' has no row in {tmp_path}/short.json"):
            attach_scores(ds, short, drop_unscored=drop)
    with pytest.raises(KeyError, match="the dataset has no 'id' column"):
        attach_scores(ds.remove_columns("id"), scores)


def test_config_and_trainer_refuse_what_poft_cannot_honour(tmp_path):
    with pytest.raises(ValueError, match="target_tokens 'all'; valid: response, full_sequence"):
        PoFTConfig(output_dir=str(tmp_path), target_tokens="all")
    with pytest.raises(ValueError, match="beta must be a finite number, got nan"):
        PoFTConfig(output_dir=str(tmp_path), beta=math.nan)
    with pytest.raises(ValueError, match="loss_type 'dft'"):
        PoFTConfig(output_dir=str(tmp_path), loss_type="dft")
    tok = tokenizer()
    convs = make_conversations(3)
    with pytest.raises(ValueError, match="packing"):
        trainer_for(tiny_llama(len(tok)), tok, scored_dataset(convs), tmp_path, packing=True)
    with pytest.raises(KeyError, match="the train dataset has no 'aligned_score' column"):
        trainer_for(tiny_llama(len(tok)), tok, Dataset.from_list(convs), tmp_path)
    bad = scored_dataset(convs).map(lambda r, k: {"aligned_score": math.nan if k == 1 else r["aligned_score"]},
                                    with_indices=True)
    with pytest.raises(ValueError, match="train dataset row 1: column 'aligned_score' is nan"):
        trainer_for(tiny_llama(len(tok)), tok, bad, tmp_path)

"""`poft audit`: every figure on a hand-made dataset worked out by hand, and the page as a browser renders it."""

import json
import math
import shutil
import subprocess

import pytest

from poft.audit import SECTIONS, AuditSpec, audit, render_html
from poft.cli import main
from poft.data import dataset_fingerprint, save_conversations

# Ten samples: mean aligned score, the two models' scores (A, B), the base model's score, label.
SAMPLES = [(-0.1, -0.1, -0.1, -1.0, "clean"), (-0.2, -0.1, -0.3, -1.0, "clean"), (-0.3, -0.3, -0.3, -1.0, "clean"),
           (-0.4, -0.4, -0.4, -1.0, "clean"), (-0.5, -0.5, -0.5, -1.0, "wrong"), (-0.6, -0.6, -0.6, -1.0, "clean"),
           (-2.0, -1.0, -3.0, -1.0, "truncated"), (-3.0, -3.0, -3.0, -1.0, "clean"),
           (-5.0, -5.0, -5.0, -1.0, "boilerplate"), (-9.0, -8.0, -10.0, -1.0, "boilerplate")]


def dataset():
    convs = [{"id": f"s{i}", "messages": [{"role": "user", "content": f"question {i}"},
                                          {"role": "assistant", "content": f"answer {i}"}],
              "meta": {"flaw": label, "source": "a" if i % 2 else "b"}}
             for i, (*_, label) in enumerate(SAMPLES)]
    fp = dataset_fingerprint(convs)
    merged = {"meta": {"kind": "merged", "models": ["A", "B"], "sources": ["a.json", "b.json"],
                       "dataset_fingerprint": fp},
              "rows": [{"id": f"s{i}", "score": m, "scores": {"A": a, "B": b}} for i, (m, a, b, _, _) in enumerate(SAMPLES)]}
    base = {"meta": {"kind": "aligned", "model": "base", "dataset_fingerprint": fp},
            "rows": [{"id": f"s{i}", "score": r} for i, (_, _, _, r, _) in enumerate(SAMPLES)]}
    return convs, merged, base


def test_audit_by_hand():
    convs, merged, base = dataset()
    result = audit(convs, merged, base, AuditSpec(top=3, bottom_share=0.2))
    assert [s["id"] for s in result["lowest"]] == ["s9", "s8", "s7"]
    assert [s["id"] for s in result["highest"]] == ["s0", "s1", "s2"]
    assert result["lowest"][0]["text"] == "USER: question 9\nASSISTANT: answer 9"
    # Sources: odd ids are "a" (-0.2, -0.4, -0.6, -3.0, -9.0: mean -2.64), even ids "b".
    assert result["distribution"]["a"]["mean"] == pytest.approx(-2.64) and result["distribution"]["b"]["n"] == 5
    # The lowest 20% (2 samples: s9, s8) are both boilerplate: precision 2/2; flawed in all 4 -> recall 0.5.
    bottom = result["labels"]["bottom"]
    assert (bottom["n"], bottom["flawed"], bottom["precision"], bottom["recall"]) == (2, 2, 1.0, 0.5)
    assert bottom["flawed_share_of_data"] == 0.4
    # tau = sigmoid(mean aligned - r_base) with r_base = -1: s0 sigmoid(0.9) = 0.710950, s9 sigmoid(-8) = 0.000335.
    tau = [1 / (1 + math.exp(-(m + 1.0))) for m, *_ in SAMPLES]
    deciles = result["weights"]["deciles"]
    assert [d["decile"] for d in deciles] == list(range(1, 11))  # ten samples: one per decile, lowest first
    assert deciles[0]["weight_share"] == pytest.approx(tau[9] / sum(tau))
    assert deciles[-1]["weight_share"] == pytest.approx(tau[0] / sum(tau))
    per = result["labels"]["per_label"]
    assert per["boilerplate"]["weight_share"] == pytest.approx((tau[8] + tau[9]) / sum(tau))
    assert per["clean"]["data_share"] == 0.6 and per["wrong"]["mean_score"] == -0.5
    # Agreement: A and B rank the ten alike but for s1/s2 (B: -0.3, -0.3 tie) and s6/s7: Spearman below 1.
    rho = result["agreement"]["spearman"]["A | B"]
    assert 0.9 < rho < 1.0
    # s6 (A -1, B -3) and s9 (A -8, B -10) have the largest std, 1.0; a tie keeps the data's order
    assert [s["id"] for s in result["agreement"]["most_disputed"][:2]] == ["s6", "s9"]


def test_audit_without_base_scores_or_labels_says_so():
    convs, merged, _ = dataset()
    for c in convs:
        c["meta"] = {}
    result = audit(convs, merged)
    assert result["weights"] is None and result["labels"] is None
    page = render_html(result)
    assert "No base-model scores given" in page and "The data carry no labels." in page


def test_a_sample_without_a_score_row_is_named():
    convs, merged, _ = dataset()
    merged["rows"] = merged["rows"][1:]
    with pytest.raises(KeyError, match="sample 's0' has no row in the score file"):
        audit(convs, merged)


@pytest.mark.slow  # a headless browser: a few seconds
@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs chromium (Debian package) for a headless render")
def test_cli_page_renders_in_a_browser_with_every_section(tmp_path, capsys):
    convs, merged, base = dataset()
    save_conversations(tmp_path / "data.jsonl", convs)
    (tmp_path / "merged.json").write_text(json.dumps(merged))
    (tmp_path / "base.json").write_text(json.dumps(base))
    assert main(["audit", "--data", str(tmp_path / "data.jsonl"), "--scores", str(tmp_path / "merged.json"),
                 "--base-scores", str(tmp_path / "base.json"), "--quiet", "--out-dir", str(tmp_path / "audit")]) == 0
    saved = json.loads((tmp_path / "audit" / "audit.json").read_text())
    assert saved["labels"]["bottom"]["precision"] == 1.0 and saved["base_scores"].endswith("base.json")
    page = tmp_path / "audit" / "audit.html"
    shot = tmp_path / "audit.png"
    browser = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1200,2400"]
    subprocess.run([*browser, f"--screenshot={shot}", page.as_uri()], check=True, capture_output=True, timeout=60)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    dom = subprocess.run([*browser, "--dump-dom", page.as_uri()], check=True, capture_output=True, text=True,
                         timeout=60).stdout
    for section in SECTIONS:
        assert f'<section id="{section}">' in dom
    assert "Lowest-scored samples" in dom and "precision 1.00" in dom and 'alt="score histogram"' in dom

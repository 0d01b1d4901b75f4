"""SFT: response-only labels, malformed records, packing, and `tether sft` through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from tether.cli import app
from tether.data.sft import (
    IGNORE,
    SFTExample,
    encode_record,
    label_tokens,
    load_sft,
    pack_examples,
    packed_collate,
    pad_collate,
)
from tether.errors import DataError
from tether.losses import sft_loss
from tether.models.factory import tiny_model_and_tokenizer
from tether.stages.sft import sft_batch_loss

torch.set_num_threads(1)

CHAT = [{"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2 plus 3?"},
        {"role": "assistant", "content": "5."},
        {"role": "user", "content": "And 1 plus 1?"},
        {"role": "assistant", "content": "2."}]


@pytest.fixture(scope="module")
def tiny():
    return tiny_model_and_tokenizer(seed=0)


def _trained(tok, ex: SFTExample) -> str:
    return tok.decode([t for t, lab in zip(ex.input_ids, ex.labels, strict=True) if lab != IGNORE])


def _write_sft(path: Path, n: int = 24) -> Path:
    with path.open("w") as f:
        for i in range(n):
            a, b = i % 7, (3 * i) % 5
            f.write(json.dumps({"messages": [
                {"role": "user", "content": f"What is {a} plus {b}?"},
                {"role": "assistant", "content": f"{a} plus {b} is {a + b}."}]}) + "\n")
    return path


# -- labels ----------------------------------------------------------------------

def test_chat_labels_cover_assistant_turns_only(tiny) -> None:
    _, tok = tiny
    ex = encode_record(tok, {"messages": CHAT}, "f.jsonl", 1)
    assert _trained(tok, ex) == "5.<|eos|>2.<|eos|>"
    # The same ids and mask as the template's own {% generation %} markers.
    ref = tok.apply_chat_template(CHAT, tokenize=True, return_dict=True,
                                  return_assistant_tokens_mask=True)
    assert ex.input_ids == ref["input_ids"]
    assert [int(lab != IGNORE) for lab in ex.labels] == ref["assistant_masks"]


def test_prompt_completion_and_text_labels(tiny) -> None:
    _, tok = tiny
    ex = encode_record(tok, {"prompt": "What is 2 plus 3?", "completion": " 5."}, "f", 1)
    assert _trained(tok, ex) == " 5.<|eos|>"
    assert ex.input_ids[0] == tok.bos_token_id and ex.labels[0] == IGNORE
    conv = encode_record(tok, {"prompt": CHAT[:4], "completion": CHAT[4:]}, "f", 1)
    assert _trained(tok, conv) == "2.<|eos|>"  # the assistant turn inside the prompt is masked
    txt = encode_record(tok, {"text": "Hello there."}, "f", 1)
    assert txt.labels == txt.input_ids and txt.input_ids[-1] == tok.eos_token_id


def test_prompt_tokens_contribute_nothing_to_the_loss(tiny) -> None:
    model, tok = tiny
    ex = encode_record(tok, {"messages": CHAT}, "f", 1)
    batch = pad_collate([ex], tok.pad_token_id)
    logits = model(input_ids=batch["input_ids"]).logits.detach().requires_grad_(True)  # [1, T, V]
    loss, _ = sft_loss(logits, batch["labels"])
    loss.backward()
    # Position t predicts token t+1: its gradient is non-zero iff labels[t+1] is trained.
    predicts_response = batch["labels"][0, 1:] != IGNORE  # [T-1]
    row_grad = logits.grad[0, :-1].abs().sum(-1)  # [T-1]
    assert (row_grad[~predicts_response] == 0).all()
    assert (row_grad[predicts_response] > 0).all()
    # Any change to the logits at prompt positions leaves the loss as it was.
    noisy = logits.detach().clone()
    noisy[0, :-1][~predicts_response] += 100 * torch.randn_like(noisy[0, :-1][~predicts_response])
    assert torch.equal(sft_loss(noisy, batch["labels"])[0], loss.detach())


@pytest.mark.parametrize(("record", "expected"), [
    ({"prompt": "hi"}, "f.jsonl:3: field 'completion': missing"),
    ({"messages": "hello"}, "f.jsonl:3: field 'messages': expected a non-empty list"),
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": " "}]},
     "f.jsonl:3: field 'messages[1].content': empty assistant content"),
    ({"messages": [{"role": "user", "content": 5}]},
     "f.jsonl:3: field 'messages[0].content': missing or not a string"),
    ({"messages": [{"role": "user", "content": "hi"}]},
     "f.jsonl:3: field 'messages': no assistant message"),
    ({"prompt": "hi", "completion": 3}, "f.jsonl:3: field 'completion': expected a string"),
    ({"chosen": "x"}, "f.jsonl:3: field 'messages': expected 'messages'"),
])
def test_malformed_records_name_file_line_and_field(tiny, record, expected) -> None:
    _, tok = tiny
    with pytest.raises(DataError) as e:
        encode_record(tok, record, "f.jsonl", 3)
    assert str(e.value).startswith(expected)


def test_long_examples_are_cut_and_empty_ones_dropped(tiny, tmp_path: Path) -> None:
    _, tok = tiny
    f = tmp_path / "d.jsonl"
    long_prompt = "word " * 80
    f.write_text(json.dumps({"prompt": long_prompt, "completion": "yes"}) + "\n"
                 + json.dumps({"prompt": "hi", "completion": "yes " * 40}) + "\n")
    data = load_sft(f, tok, max_len=32)
    assert (data.records, data.truncated, data.dropped, len(data.examples)) == (2, 2, 1, 1)
    assert all(len(e.input_ids) == 32 for e in data.examples)


# -- packing ---------------------------------------------------------------------

def test_packed_rows_match_examples_one_by_one(tiny) -> None:
    model, tok = tiny
    model.eval()
    exs = [encode_record(tok, {"messages": [
        {"role": "user", "content": f"What is {a} plus {b}?"},
        {"role": "assistant", "content": f"It is {a + b}."}]}, "f", 1) for a, b in
        [(1, 2), (3, 4), (5, 6)]]
    rows = pack_examples(exs, seq_len=64)
    assert len(rows) == 1 and rows[0].examples == 3
    packed = packed_collate(rows, tok.pad_token_id, 64)
    with torch.no_grad():
        lp = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"],
                   use_cache=False).logits[0]  # [64, V]
        start = 0
        for e in exs:
            alone = model(input_ids=torch.tensor([e.input_ids])).logits[0]  # [n, V]
            assert torch.allclose(lp[start:start + len(e.input_ids)], alone, atol=1e-5)
            start += len(e.input_ids)
        # The packed loss equals the token-weighted loss of the padded batch.
        padded = pad_collate(exs, tok.pad_token_id)
        a, _ = sft_batch_loss(model, packed)
        b, _ = sft_batch_loss(model, padded)
    assert label_tokens(packed) == label_tokens(padded)
    assert torch.allclose(a, b, atol=1e-5)


# -- through the CLI ---------------------------------------------------------------

def _cli(*args: str):
    return CliRunner().invoke(app, list(args))


def _sft_args(tmp_path: Path, out: Path, *extra: str) -> list[str]:
    data = _write_sft(tmp_path / "sft.jsonl")
    return ["sft", "--config", "configs/sft.yaml", f"run.out={out}", f"data.path={data}",
            "train.max_steps=4", "train.batch_size=4", "train.save_every=2",
            "train.progress=false", "train.log_every=1", "data.max_len=64", "optim.lr=1e-2", *extra]


@pytest.mark.parametrize("extra", [[], ["data.packing=true", "lora.enabled=true"]],
                         ids=["padding", "packing+lora"])
def test_sft_cli_smoke_writes_the_run_directory(tmp_path: Path, extra: list[str]) -> None:
    from transformers import AutoModelForCausalLM

    out = tmp_path / "run" / "sft"
    res = _cli(*_sft_args(tmp_path, out, *extra))
    assert res.exit_code == 0, res.output
    assert {"config.yaml", "metrics.jsonl", "summary.json", "checkpoints", "model",
            "tb"} <= {p.name for p in out.iterdir()}
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "step-000002", "step-000004"]
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert all(r["loss/total"] is not None and r["loss/total"] > 0 for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 4 and summary["train/skipped_steps"] == 0
    # model/ loads with plain transformers (LoRA merged) and differs from the start.
    trained = AutoModelForCausalLM.from_pretrained(out / "model")
    start, _ = tiny_model_and_tokenizer(seed=0)
    assert not (out / "model" / "adapter_config.json").exists()
    assert not torch.equal(trained.model.layers[0].self_attn.q_proj.weight,
                           start.model.layers[0].self_attn.q_proj.weight)
    if extra:
        assert summary["data/rows"] < summary["data/examples"]  # packed
        assert summary["model/trainable_parameters"] < sum(p.numel() for p in start.parameters())


def test_sft_cli_errors_exit_2_and_write_nothing(tmp_path: Path) -> None:
    out = tmp_path / "run" / "sft"
    res = _cli("sft", "--config", "configs/sft.yaml", f"run.out={out}", "bogus.key=1")
    assert res.exit_code == 2
    assert "bogus" in res.output and "unknown key" in res.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"},
                                            {"role": "assistant", "content": "yo"}]}) + "\n"
                   + json.dumps({"messages": [{"role": "user", "content": "hi"},
                                              {"role": "assistant", "content": ""}]}) + "\n")
    res = _cli("sft", "--config", "configs/sft.yaml", f"run.out={out}", f"data.path={bad}")
    assert res.exit_code == 2
    assert f"{bad}:2: field 'messages[1].content': empty assistant content" in res.output
    assert not out.exists()

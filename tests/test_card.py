"""tinymim.card: the model card round-trips and refuses malformed content."""

from __future__ import annotations

import json

import pytest

from tinymim.card import CardError, ModelCard, Preprocess, adapt_channels, normalisation_problem


def _card() -> ModelCard:
    return ModelCard(
        arch="vit_tiny_patch16_224",
        arch_kwargs={"img_size": 28, "patch_size": 7, "depth": 2, "in_chans": 1, "num_classes": 3},
        preprocess=Preprocess(input_size=(1, 28, 28), mean=(0.286,), std=(0.353,)),
        labels=("a", "b", "c"),
        distilled_block_heads=6,
        metrics={"val_top1": 81.5},
    )


def test_round_trip(tmp_path):
    card = _card()
    card.save(tmp_path)
    assert ModelCard.load(tmp_path) == card
    assert ModelCard.load(tmp_path / "card.json").num_classes == 3


def test_missing_and_malformed(tmp_path):
    with pytest.raises(CardError, match="no model card"):
        ModelCard.load(tmp_path)
    (tmp_path / "card.json").write_text("{not json")
    with pytest.raises(CardError, match="not valid JSON"):
        ModelCard.load(tmp_path)
    d = _card().to_dict()
    del d["labels"]
    (tmp_path / "card.json").write_text(json.dumps(d))
    with pytest.raises(CardError, match="missing the key 'labels'"):
        ModelCard.load(tmp_path)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"input_size": (2, 8, 8), "mean": (0, 0), "std": (1, 1)}, "channels must be 1 or 3"),
        ({"input_size": (3, 8, 8), "mean": (0,), "std": (1,)}, "need 3 values"),
        ({"input_size": (1, 8, 8), "mean": (0,), "std": (0,)}, "std must be positive"),
        ({"input_size": (1, 8, 8), "mean": (0,), "std": (1,), "interpolation": "lanczos"}, "interpolation"),
    ],
)
def test_bad_preprocess(kwargs, fragment):
    with pytest.raises(CardError, match=fragment):
        Preprocess(**kwargs)


def test_adapt_channels_averages_repeats_or_refuses():
    assert adapt_channels((0.485, 0.456, 0.406), 1) == pytest.approx((0.449,))
    assert adapt_channels((0.5,), 3) == (0.5, 0.5, 0.5)
    assert adapt_channels((0.1, 0.2, 0.3), 3) == (0.1, 0.2, 0.3)
    with pytest.raises(CardError, match="cannot adapt the 2 values"):
        adapt_channels((0.1, 0.2), 3)


@pytest.mark.parametrize(
    ("mean", "std", "channels", "problem"),
    [
        ((0.5,), (0.25,), 1, None),
        (None, None, 3, None),
        ((0.5,), None, None, "given together"),
        ((0.5,), (0.25,), 3, "need 3 values each"),
        ((0.5, 0.5), (0.25,), None, "same number of values"),
        ((0.5,), (0.0,), 1, "std must be positive"),
    ],
)
def test_normalisation_problem(mean, std, channels, problem):
    found = normalisation_problem(mean, std, channels)
    assert found is None if problem is None else problem in found


def test_preprocess_refuses_what_normalisation_problem_names():
    with pytest.raises(CardError, match="preprocess: mean/std need 3 values each"):
        Preprocess((3, 8, 8), (0.5,), (0.25,))

"""Compression of updates: round trips, unbiasedness, error feedback, bad payloads."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from accord.errors import UpdateRejected
from accord.transforms.compression import (
    Compressor,
    compressed_size,
    decode,
    encode,
    topk_count,
    topk_fraction,
)

SIZES = [300, 7, 1]  # an odd-sized tensor exercises 4-bit padding, 1 a constant


def _update(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 0.1, sum(SIZES))


@pytest.mark.parametrize(("method", "levels"), [("q8", 255), ("q4", 15)])
def test_quantized_round_trip_is_within_one_step_per_tensor(
    method: str, levels: int
) -> None:
    update = _update()
    payload, decoded = encode(
        update, SIZES, method=method, fraction=0.01, rng=np.random.default_rng(1)
    )
    assert np.array_equal(decode(payload, SIZES, method=method, fraction=0.01), decoded)
    start = 0
    for n in SIZES:
        part, got = update[start : start + n], decoded[start : start + n]
        step = (part.max() - part.min()) / levels
        assert np.abs(got - part).max() <= step * (1 + 1e-5) + 1e-7
        start += n


def test_four_bit_codes_pack_two_per_byte() -> None:
    assert compressed_size(SIZES, "q4", 0.01) == 3 * 8 + 150 + 4 + 1
    assert compressed_size(SIZES, "q8", 0.01) == 3 * 8 + 308


@pytest.mark.parametrize("method", ["q8", "q4"])
def test_stochastic_quantization_is_unbiased(method: str) -> None:
    # Arrange: one fixed update, quantized many times with fresh randomness.
    update = _update(3)
    rng = np.random.default_rng(4)
    trials = 2000
    # Act
    mean = np.zeros_like(update)
    for _ in range(trials):
        mean += encode(update, SIZES, method=method, fraction=0.01, rng=rng)[1]
    mean /= trials
    # Assert: each value's error is a bounded variable of variance <= step^2/4,
    # so the mean's error stays within 5 standard errors; plain rounding to the
    # nearest level would be off by up to half a step.
    step = (update[:300].max() - update[:300].min()) / (255 if method == "q8" else 15)
    bound = 5 * (step / 2) / np.sqrt(trials)
    assert np.abs(mean[:300] - update[:300]).max() < bound
    assert np.abs(mean - update).mean() < bound / 3


def test_topk_sends_the_largest_values_and_zeroes_the_rest() -> None:
    update = _update(5)
    k = topk_count(update.size, 0.05)
    payload, decoded = encode(
        update, SIZES, method="topk", fraction=0.05, rng=np.random.default_rng(0)
    )
    kept = np.flatnonzero(decoded)
    assert kept.size == k == 16
    assert np.abs(update[kept]).min() >= np.sort(np.abs(update))[-k]
    assert np.allclose(decoded[kept], update[kept], rtol=1e-6)
    assert len(zlib.decompress(payload)) == compressed_size(SIZES, "topk", 0.05)


def test_topk_count_bounds() -> None:
    assert topk_count(1000, 0.01) == 10
    assert topk_count(1001, 0.01) == 11
    assert topk_count(10, 0.01) == 1
    assert topk_count(10, 1.0) == 10


def test_error_feedback_accumulates_what_was_not_sent() -> None:
    # Arrange: the same update twice; top-k sends 1 of 308 values each time.
    compressor = Compressor("topk", 1 / 308)
    update = np.linspace(-0.5, 1.0, sum(SIZES))
    rng = np.random.default_rng(0)
    # Act
    _, first = compressor.compress(update, SIZES, rng)
    assert compressor.residual is not None
    assert np.allclose(compressor.residual, update - first)
    _, second = compressor.compress(update, SIZES, rng)
    # Assert: the residual is everything owed, the sum of both updates minus
    # what went; the second message picks from update + residual.
    assert np.allclose(first + second + compressor.residual, 2 * update, atol=1e-6)
    assert np.flatnonzero(first).tolist() == [307]
    # 307 was paid in full; 306 is now owed twice over (update + residual).
    assert np.flatnonzero(second).tolist() == [306]
    assert second[306] == pytest.approx(2 * update[306], rel=1e-6)
    assert compressor.residual[0] == pytest.approx(-1.0)


def test_quantization_keeps_no_residual() -> None:
    compressor = Compressor("q8", 0.01)
    compressor.compress(_update(), SIZES, np.random.default_rng(0))
    assert compressor.residual is None


def _body(method: str, fraction: float = 0.01) -> bytearray:
    payload, _ = encode(
        _update(), SIZES, method=method, fraction=fraction, rng=np.random.default_rng(0)
    )
    return bytearray(zlib.decompress(payload))


def _decode(body: bytes, method: str, fraction: float = 0.01) -> np.ndarray:
    return decode(zlib.compress(bytes(body)), SIZES, method=method, fraction=fraction)


@pytest.mark.parametrize("cut", [-1, 1])
def test_wrong_length_is_refused(cut: int) -> None:
    body = _body("q8")
    body = body[:cut] if cut < 0 else body + b"\0"
    with pytest.raises(UpdateRejected, match="wrong length"):
        _decode(body, "q8")


def test_exact_length_is_accepted() -> None:
    assert _decode(_body("q8"), "q8").size == sum(SIZES)


def test_trailing_bytes_after_the_stream_are_refused() -> None:
    payload, _ = encode(
        _update(), SIZES, method="q8", fraction=0.01, rng=np.random.default_rng(0)
    )
    with pytest.raises(UpdateRejected, match="after its end"):
        decode(payload + b"x", SIZES, method="q8", fraction=0.01)


def test_garbage_is_refused() -> None:
    with pytest.raises(UpdateRejected, match="not valid deflate"):
        decode(b"not deflate", SIZES, method="q4", fraction=0.01)


@pytest.mark.parametrize("scale", [np.nan, np.inf, -1.0])
def test_invalid_scale_is_refused(scale: float) -> None:
    body = _body("q8")
    body[4:8] = np.array([scale], dtype="<f4").tobytes()  # tensor 0's step
    with pytest.raises(UpdateRejected, match="tensor 0 has an invalid scale"):
        _decode(body, "q8")


def test_zero_step_is_a_constant_tensor() -> None:
    body = _body("q8")
    body[4:8] = np.array([0.0], dtype="<f4").tobytes()
    decoded = _decode(body, "q8")
    assert np.all(decoded[:300] == decoded[0])


def test_four_bit_padding_must_be_zero() -> None:
    body = _body("q4")
    end_of_tensor_1 = 8 + 150 + 8 + 4  # tensor 1 has 7 codes: the 8th nibble pads
    body[end_of_tensor_1 - 1] |= 0xF0
    with pytest.raises(UpdateRejected, match="tensor 1 has padding bits set"):
        _decode(body, "q4")


def _topk_body(index: list[int], values: list[float]) -> bytes:
    return (
        np.array(index, dtype="<u4").tobytes() + np.array(values, dtype="<f4").tobytes()
    )


def test_topk_index_out_of_range_is_refused_and_last_index_accepted() -> None:
    k = topk_count(308, 0.01)  # 4
    ok = _topk_body([0, 1, 2, 307], [1.0] * k)
    assert _decode(ok, "topk")[307] == 1.0
    bad = _topk_body([0, 1, 2, 308], [1.0] * k)
    with pytest.raises(UpdateRejected, match="index 308 out of range"):
        _decode(bad, "topk")


def test_topk_duplicate_indices_are_refused() -> None:
    with pytest.raises(UpdateRejected, match="repeats index 2"):
        _decode(_topk_body([0, 2, 2, 5], [1.0] * 4), "topk")


def test_topk_unsorted_indices_are_refused() -> None:
    with pytest.raises(UpdateRejected, match="increasing order"):
        _decode(_topk_body([0, 5, 2, 7], [1.0] * 4), "topk")


def test_topk_nan_value_is_refused() -> None:
    with pytest.raises(UpdateRejected, match="NaN or infinite value"):
        _decode(_topk_body([0, 1, 2, 3], [1.0, np.nan, 1.0, 1.0]), "topk")


def test_topk_wrong_count_is_refused() -> None:
    with pytest.raises(UpdateRejected, match="wrong length"):
        _decode(_topk_body([0, 1, 2, 3, 4], [1.0] * 5), "topk")


def test_decompression_bomb_stops_at_the_expected_size() -> None:
    bomb = zlib.compress(b"\0" * 10_000_000)
    with pytest.raises(UpdateRejected, match=r"expected 332 bytes once inflated, got"):
        decode(bomb, SIZES, method="q8", fraction=0.01)


def test_topk_fraction_warms_up_four_times_sparser_per_round() -> None:
    # DGC's schedule: 25 %, 6.25 %, 1.5625 %, then never below the target.
    assert [topk_fraction(0.01, 3, r) for r in (1, 2, 3, 4, 30)] == [
        0.25,
        0.0625,
        0.015625,
        0.01,
        0.01,
    ]
    assert topk_fraction(0.1, 3, 2) == 0.1  # 6.25 % would be below the target
    assert topk_fraction(0.01, 0, 1) == 0.01  # no warm-up
    with pytest.raises(ValueError, match="numbered from 1"):
        topk_fraction(0.01, 3, 0)


def test_momentum_correction_by_hand() -> None:
    # Three values, one sent per message, momentum 0.5 with factor masking
    # (Lin et al. 2018, eqs. 5 and 7).
    sizes = [3]
    compressor = Compressor("topk", 1 / 3, momentum=0.5, masking=True)
    rng = np.random.default_rng(0)
    # Round 1: u = g = (1, 2, 4); v = u; index 2 goes, its velocity is masked.
    _, first = compressor.compress(np.array([1.0, 2.0, 4.0]), sizes, rng)
    assert first.tolist() == [0.0, 0.0, 4.0]
    assert compressor.velocity is not None and compressor.residual is not None
    assert compressor.velocity.tolist() == [1.0, 2.0, 0.0]
    assert compressor.residual.tolist() == [1.0, 2.0, 0.0]
    # Round 2: u = 0.5 (1, 2, 0) + (1, 1, 1) = (1.5, 2, 1);
    # v = (1, 2, 0) + u = (2.5, 4, 1): index 1 goes (4).
    _, second = compressor.compress(np.array([1.0, 1.0, 1.0]), sizes, rng)
    assert second.tolist() == [0.0, 4.0, 0.0]
    assert compressor.velocity.tolist() == [1.5, 0.0, 1.0]
    assert compressor.residual.tolist() == [2.5, 0.0, 1.0]


def test_momentum_correction_without_masking_by_hand() -> None:
    compressor = Compressor("topk", 1 / 3, momentum=0.5)
    rng = np.random.default_rng(0)
    compressor.compress(np.array([1.0, 2.0, 4.0]), [3], rng)
    assert compressor.velocity is not None and compressor.residual is not None
    assert compressor.velocity.tolist() == [1.0, 2.0, 4.0]  # kept where sent
    # u = 0.5 (1, 2, 4) + (1, 1, 1) = (1.5, 2, 3); v = (1, 2, 0) + u = (2.5, 4, 3)
    _, second = compressor.compress(np.array([1.0, 1.0, 1.0]), [3], rng)
    assert second.tolist() == [0.0, 4.0, 0.0]
    assert compressor.velocity.tolist() == [1.5, 2.0, 3.0]
    assert compressor.residual.tolist() == [2.5, 0.0, 3.0]


def test_without_momentum_no_velocity_is_kept() -> None:
    compressor = Compressor("topk", 0.01)
    compressor.compress(_update(), SIZES, np.random.default_rng(0))
    assert compressor.velocity is None


def test_a_warm_up_round_is_decoded_with_its_own_density() -> None:
    update = _update()
    payload, sent = Compressor("topk", 0.01).compress(
        update, SIZES, np.random.default_rng(0), fraction=0.25
    )
    assert np.count_nonzero(sent) == topk_count(update.size, 0.25)
    assert np.array_equal(decode(payload, SIZES, method="topk", fraction=0.25), sent)
    with pytest.raises(UpdateRejected, match="wrong length"):
        decode(payload, SIZES, method="topk", fraction=0.01)

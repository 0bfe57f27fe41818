"""Progress reports, cancellation, warm-up and threads, on the miniature pipeline."""

from __future__ import annotations

import threading
from dataclasses import FrozenInstanceError

import numpy as np
import pytest

from facefit.errors import FacefitError
from facefit.pipeline import STAGES, Cancelled, CancelToken, Pipeline, Progress
from facefit.types import Evidence
from tests.generator_helpers import single_thread  # noqa: F401 (autouse)
from tests.pipeline_helpers import (
    save_model,
    toy_config,
    toy_gallery,
    toy_lq,
    toy_registry,
    toy_sketch,
)

EVIDENCE = Evidence(sketch=toy_sketch(), lq=toy_lq(), text="a man", allow_no_face=("lq",))


@pytest.fixture(scope="module")
def registry():
    return toy_registry()


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, registry):
    model_dir = save_model(tmp_path_factory.mktemp("model") / "tiny")
    config = toy_config(model_dir, rounds=3, candidates=2, steps=4, stop_when_stable=0)
    return Pipeline(config, registry=registry, gallery=toy_gallery(registry))


class CountingBackend:
    """Wraps a denoiser backend and counts its calls (one per sampler step)."""

    def __init__(self, inner):
        self.inner, self.calls, self.name = inner, 0, inner.name

    def __call__(self, *args):
        self.calls += 1
        return self.inner(*args)


def test_progress_reports_every_stage_and_step(pipeline):
    seen: list[Progress] = []
    result = pipeline.run(EVIDENCE, progress=seen.append)
    assert seen[0].stage == "prepare" and seen[-1].stage == "done"
    assert {p.stage for p in seen} == set(STAGES)
    for r in range(3):
        steps = [p.step for p in seen if p.stage == "sample" and p.round == r]
        assert steps == [0, 1, 2, 3, 4]  # before the first step, then after each
        ranked = [p.candidate for p in seen if p.stage == "rank" and p.round == r]
        assert ranked == [0, 2]
    assert all(p.rounds == 3 and p.candidates == 2 and p.steps == 4 for p in seen[:-1])
    fractions = [p.fraction for p in seen]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert seen[-1] == Progress("done", 2, 3, 2, 2, 4, 4)
    with pytest.raises(FrozenInstanceError):
        seen[0].step = 9  # type: ignore[misc]
    # progress changes nothing in the result
    plain = pipeline.run(EVIDENCE)
    assert plain.matches == result.matches
    assert all(
        np.array_equal(a.image, b.image) for a, b in zip(plain.candidates, result.candidates)
    )


def test_cancel_mid_round_stops_within_one_sampler_step(pipeline):
    token = CancelToken()
    counter = CountingBackend(pipeline.components.backend)
    pipeline.components.backend, inner = counter, pipeline.components.backend
    calls_at_cancel = []

    def cancel_in_round_1(p: Progress) -> None:
        if p.stage == "sample" and p.round == 1 and p.step == 1:
            calls_at_cancel.append(counter.calls)
            token.cancel()

    try:
        with pytest.raises(Cancelled) as caught:
            pipeline.run(EVIDENCE, progress=cancel_in_round_1, cancel=token)
    finally:
        pipeline.components.backend = inner
    # one batched denoiser call per step: cancelled after step 1, stopped after step 2
    assert counter.calls - calls_at_cancel[0] <= 1
    stopped = caught.value
    assert isinstance(stopped, FacefitError) and "sampler step 2 of round 1" in str(stopped)
    result = stopped.result
    assert len(result.rounds) == 1 and result.provenance["rounds_run"] == 1
    assert result.provenance["stopped"].startswith("cancelled")
    assert [m.rank for m in result.matches] == list(range(1, len(result.matches) + 1))
    full = pipeline.run(EVIDENCE)
    assert np.array_equal(full.rounds[0].candidates[0].image, result.rounds[0].candidates[0].image)


def test_cancel_before_the_first_round_gives_an_empty_result(pipeline):
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled, match="while preparing") as caught:
        pipeline.run(EVIDENCE, cancel=token)
    assert caught.value.result.rounds == () and caught.value.result.matches == ()
    assert token.cancelled and "cancelled=True" in repr(token)


def test_a_callback_may_raise_cancelled(pipeline):
    def stop_after_round_0(trace):
        raise Cancelled("investigator closed the case")

    with pytest.raises(Cancelled, match="investigator closed the case") as caught:
        pipeline.run(EVIDENCE, on_round=stop_after_round_0)
    assert caught.value.result.rounds == ()  # the round was not complete when it raised


def test_cancel_from_another_thread(pipeline):
    token = CancelToken()
    started = threading.Event()

    def progress(p: Progress) -> None:
        if p.stage == "sample" and p.round == 1:
            started.set()
            token.wait(timeout=10)  # hold the run until the other thread cancels

    def canceller():
        started.wait(timeout=30)
        token.cancel()

    thread = threading.Thread(target=canceller)
    thread.start()
    with pytest.raises(Cancelled) as caught:
        pipeline.run(EVIDENCE, progress=progress, cancel=token)
    thread.join()
    assert len(caught.value.result.rounds) == 1


def test_bad_progress_and_cancel_arguments(pipeline):
    with pytest.raises(TypeError, match="CancelToken"):
        pipeline.run(EVIDENCE, cancel=True)
    with pytest.raises(TypeError, match="callable"):
        pipeline.run(EVIDENCE, progress="bar")


def test_four_threads_on_one_pipeline_match_sequential_runs(pipeline):
    probes = [
        Evidence(sketch=toy_sketch(seed), lq=toy_lq(seed), allow_no_face="lq") for seed in range(4)
    ]
    expected = [pipeline.run(e) for e in probes]
    got: list = [None] * 4
    errors: list = []

    def work(i: int) -> None:
        try:
            got[i] = pipeline.run(probes[i], progress=lambda p: None)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for a, b in zip(expected, got):
        assert a.matches == b.matches
        assert all(np.array_equal(x.image, y.image) for x, y in zip(a.candidates, b.candidates))
        assert [t.notes for t in a.rounds] == [t.notes for t in b.rounds]


def test_warm_up_loads_ahead_and_changes_nothing(pipeline):
    assert pipeline.warm_up() is pipeline
    first = pipeline.run(EVIDENCE)
    again = pipeline.warm_up().run(EVIDENCE)
    assert first.matches == again.matches


def test_progress_bar_follows_the_run(pipeline):
    import io

    from facefit.pipeline.progress import ProgressBar

    out = io.StringIO()
    bar = ProgressBar(file=out, mininterval=0)
    pipeline.run(EVIDENCE, progress=bar)
    text = out.getvalue()
    assert "12/12" in text and "round 3/3" in text and bar.bar is None
    refused = ProgressBar(file=io.StringIO())
    with pytest.raises(FacefitError):
        pipeline.run(Evidence(sketch=np.full((48, 48), 255, np.uint8)), progress=refused)
    assert refused.bar is None and refused.options["file"].getvalue() == ""  # no bar shown


def test_loading_is_quiet_and_the_switch_is_restored():
    from transformers.utils import logging as hf_logging

    from facefit.pipeline.warmup import quiet_loading

    before = hf_logging.is_progress_bar_enabled()
    with quiet_loading():
        with quiet_loading():  # nested (another thread's run) keeps it off
            assert not hf_logging.is_progress_bar_enabled()
        assert not hf_logging.is_progress_bar_enabled()
    assert hf_logging.is_progress_bar_enabled() == before


def test_a_sampler_without_on_step_reports_per_round_and_cancels_between_rounds(tmp_path, registry):
    from facefit.interfaces import Sampler

    model_dir = save_model(tmp_path / "tiny")
    config = toy_config(model_dir, rounds=2, candidates=1, steps=2, stop_when_stable=0)
    pipeline = Pipeline(config, registry=registry)

    class OldSampler(Sampler):  # a vendor sampler that does not report its steps
        name = "old"

        def __init__(self, inner):
            self.inner = inner

        def sample(self, denoiser, conditions, *, num_images, steps, guidance, seed):
            return self.inner.sample(
                denoiser,
                conditions,
                num_images=num_images,
                steps=steps,
                guidance=guidance,
                seed=seed,
            )

    pipeline.components.sampler = OldSampler(pipeline.components.sampler)
    assert not OldSampler.reports_steps  # the interface's default: it declares no on_step
    pipeline._step_hook = pipeline.components.sampler.reports_steps
    seen = []
    pipeline.run(EVIDENCE, progress=seen.append)
    assert [p.step for p in seen if p.stage == "sample"] == [0, 2, 0, 2]
    token = CancelToken()

    def cancel_at_rank(p):
        if p.stage == "rank" and p.round == 0 and p.candidate == 1:
            token.cancel()

    with pytest.raises(Cancelled) as caught:
        pipeline.run(EVIDENCE, progress=cancel_at_rank, cancel=token)
    assert len(caught.value.result.rounds) == 1

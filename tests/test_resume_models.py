"""Real signals sent to real training processes of every model and option that came with
stacking (issue 20, item 7): two residual IndRNN layers, two `mul` layers on the
cooldown schedule, two Elman layers, and Keras's GRU cell — each with dropout, whose masks follow the
checkpointed random state. A SIGKILL between checkpoints or a SIGTERM
mid-interval, then the same command again: the run ends bitwise equal to one that was
never interrupted (tests/test_preemption.py and test_reliability.py do the same for the
default model, at more moments)."""

import signal

import pytest
from support import (EXACT_STEPS, assert_same_events, assert_same_training_state,
                     checkpoint_values, events, exact_argv, finish, latest_checkpoint_name,
                     run_cli, start_driver, wait_for)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("op_determinism_restored")]

CASES = {
    "indrnn_2_layers": (dict(model="indrnn", num_layers=2, residual="true", init="glorot"),
                        signal.SIGTERM),
    "mul_2_layers_cooldown": (dict(model="arch1", combine="mul", activation="tanh",
                                   num_layers=2, residual="true", init="glorot",
                                   schedule="cooldown"), signal.SIGKILL),
    "elman_2_layers": (dict(model="elman", num_layers=2, init="glorot"), signal.SIGKILL),
    # Keras's own cell through the generic path (issue 38, item 4).
    "keras_gru": (dict(model="keras_gru", init="glorot"), signal.SIGKILL),
}
SHARED = dict(dropout=0.2, optimizer="adam", learning_rate=0.01)
K = 26  # the signal comes while step K + 1 runs: after ckpt-20, before ckpt-40


def _argv(corpus, workdir, fields):
    sets = [f for key, value in {**SHARED, **fields}.items()
            for f in ("--set", f"{key}={value}")]
    return exact_argv(corpus, workdir, *sets)


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_signal_then_the_same_command_ends_bitwise_equal(tmp_path, capsys, corpus, case):
    fields, signum = CASES[case]
    code, reference, err = run_cli(capsys, *_argv(corpus, tmp_path / "reference", fields))
    assert code == 0 and reference["step"] == EXACT_STEPS, err
    want = (None, checkpoint_values(tmp_path / "reference"))
    want_events = events(tmp_path / "reference")

    workdir = tmp_path / "run"
    argv = _argv(corpus, workdir, fields)
    proc, marker = start_driver(tmp_path, "pause", K, argv)
    try:
        wait_for(marker, proc)
        proc.send_signal(signum)
        (tmp_path / (marker.name + ".go")).touch()  # SIGTERM: let step K + 1 end
    finally:
        _, err = finish(proc)
    if signum == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL, err[-3000:]
        resumed_at = 20
    else:  # the handler checkpoints the step under way, then exits 128 + 15
        assert proc.returncode == 143, err[-3000:]
        resumed_at = K + 1
    assert latest_checkpoint_name(workdir) == f"ckpt-{resumed_at}"

    code, result, err = run_cli(capsys, *argv)  # the same command again
    assert code == 0, err
    assert f"at step {resumed_at}." in err and result["step"] == EXACT_STEPS, err
    assert result["valid_bpc"] == reference["valid_bpc"]
    assert_same_training_state(workdir, want)
    assert_same_events(events(workdir), want_events)

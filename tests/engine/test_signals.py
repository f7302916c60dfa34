"""SIGINT/SIGTERM during a training run: a flag, or an immediate stop (engine/signals.py)."""

from __future__ import annotations

import os
import signal

import pytest

from iadet.engine.signals import Interrupted, SignalFlag


def test_a_signal_sets_the_flag_and_the_previous_handlers_come_back():
    before = signal.getsignal(signal.SIGTERM)
    with SignalFlag() as flag:
        assert flag.signal is None
        os.kill(os.getpid(), signal.SIGTERM)  # would end the test process without the flag
        assert flag.signal == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before


def test_inside_immediate_a_signal_raises_with_the_shells_exit_status():
    with SignalFlag() as flag:
        with pytest.raises(Interrupted, match="interrupted by SIGTERM") as caught:
            with flag.immediate():
                os.kill(os.getpid(), signal.SIGTERM)
        assert caught.value.exit_code == 128 + signal.SIGTERM
        assert not flag.raise_now


def test_a_signal_received_before_immediate_raises_on_entry():
    with SignalFlag() as flag:
        os.kill(os.getpid(), signal.SIGINT)
        with pytest.raises(Interrupted) as caught:
            with flag.immediate():
                pass
        assert caught.value.signum == signal.SIGINT


def test_a_second_ctrl_c_stops_at_once():
    with SignalFlag() as flag:
        os.kill(os.getpid(), signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
        assert flag.signal == signal.SIGINT

"""How a rank waits for its peers: spin first, then yield the core, then nap."""

from __future__ import annotations

from runtime import polling


def test_a_wait_spins_then_yields_then_naps(monkeypatch):
    now = [100.0]
    calls: list[str] = []
    monkeypatch.setattr(polling.time, "perf_counter", lambda: now[0])
    monkeypatch.setattr(polling, "_yield", lambda: calls.append("yield"))
    monkeypatch.setattr(polling.time, "sleep", lambda s: calls.append(f"sleep {s:g}"))
    backoff = polling.Backoff()
    for _ in range(polling._SPINS):
        backoff.pause()
    assert calls == []  # spinning: the answer may be microseconds away
    backoff.pause()
    backoff.pause()
    assert calls == ["yield", "yield"]  # a rank sharing the core runs now
    now[0] += polling._YIELD_S * 1.01
    backoff.pause()
    assert calls[-1] == f"sleep {polling._NAP_S:g}"  # a long wait burns no core
    backoff.reset()  # progress: wait afresh
    calls.clear()
    backoff.pause()
    assert calls == []

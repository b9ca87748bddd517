"""A machine without RabbitMQ or Chromium: those tests skip cleanly and say how to enable
them; with CI=true the same run fails (CI provisions both, so a skip would hide a gap).

Runs the real RabbitMQ and browser test modules in two pytest subprocesses, side by
side, with both services made unusable (a closed port, a Chromium path that does not
exist), each on a database of its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
MODULES = ["tests/config/test_rabbitmq.py", "tests/monitoring/test_browser.py"]


def _start_pytest_without_services(*, ci: bool) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"CI", "PYTEST_ADDOPTS"}}
    env.update(
        RABBITMQ_TEST_URL=f"amqp://guest:guest@127.0.0.1:{free_port()}/nowhere",
        CHROMIUM_PATH="/nonexistent/chromium",
        # One each: the two runs go at the same time.
        TEST_DATABASE_NAME=f"test_pms_service_skips{'_ci' if ci else ''}",
    )
    if ci:
        env["CI"] = "true"
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *MODULES],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def runs() -> Iterator[dict[bool, subprocess.CompletedProcess[str]]]:
    """Both runs (CI unset, CI=true) at once: each is mostly imports, one core each."""
    started = {ci: _start_pytest_without_services(ci=ci) for ci in (False, True)}
    try:
        results = {}
        for ci, process in started.items():
            stdout, stderr = process.communicate(timeout=300)
            results[ci] = subprocess.CompletedProcess(
                process.args, process.returncode, stdout, stderr
            )
        yield results
    finally:
        for process in started.values():
            if process.poll() is None:
                process.kill()
                process.wait()


def test_without_rabbitmq_or_chromium_the_tests_skip_without_errors_and_say_how_to_enable(runs):
    result = runs[False]
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    summary = output.strip().splitlines()[-1]
    assert "skipped" in summary and "error" not in summary and "failed" not in summary, summary
    assert "SKIPPED" in output and "RabbitMQ tests: RabbitMQ is not reachable" in output, output
    assert "To run them: rabbitmqctl add_vhost pms_test" in output, output
    assert "browser tests: no Chromium at CHROMIUM_PATH=/nonexistent/chromium" in output, output
    assert "To run them: apt-get install chromium" in output, output


def test_with_ci_true_a_service_test_that_cannot_run_fails_the_run(runs):
    result = runs[True]
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "CI=true and the RabbitMQ tests cannot run" in output, output
    assert "CI=true and the browser tests cannot run" in output, output

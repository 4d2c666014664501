"""Test-session settings, in force before any notebook kernel starts (kernels inherit them)."""
import os
import shutil
import tempfile

# The suite runs every notebook in the smoke profile, whatever the shell has set.
os.environ["EFFCOURSE_PROFILE"] = "smoke"
# Results and cached models of test runs stay out of the learner's working folder.
_WORKDIR = tempfile.mkdtemp(prefix="effcourse-tests-")
os.environ["EFFCOURSE_WORKDIR"] = _WORKDIR
os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_WORKDIR, ignore_errors=True)

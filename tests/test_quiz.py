"""Quizzes: plain HTML that JupyterLab's sanitizer keeps, answers hidden until opened, and the
same behaviour in a real browser without a kernel or JavaScript of ours."""
import re
import shutil
import subprocess

import pytest

from effcourse import quiz

QUESTION = quiz.ask("Which model do you deploy on a phone?", [
    ("A: 97.74%, the larger one", False, "It costs more <bytes> than the phone & app allow."),
    ("B: 90.63%, 33% smaller", True, "It fits the budget."),
], explanation="The budget decides, not the accuracy alone.")


def test_html_uses_only_tags_the_jupyterlab_sanitizer_keeps():
    page = QUESTION._repr_html_()
    tags = set(re.findall(r"</?([a-z0-9]+)", page))
    assert tags <= set(quiz.TAGS), tags - set(quiz.TAGS)
    assert "<script" not in page and "<style" not in page and "onclick" not in page
    assert "&lt;bytes&gt; than the phone &amp; app" in page, "text is escaped"


def test_every_answer_is_collapsed_with_its_verdict_and_the_explanation_inside():
    page = QUESTION._repr_html_()
    blocks = re.findall(r"<details[^>]*><summary>(.*?)</summary>(.*?)</details>", page)
    assert [b[0] for b in blocks] == ["A. A: 97.74%, the larger one", "B. B: 90.63%, 33% smaller"]
    assert "Not the best answer." in blocks[0][1] and "Yes." in blocks[1][1]
    assert all("The budget decides" in b[1] for b in blocks)
    outside = re.sub(r"<details.*?</details>", "", page)
    assert "Yes." not in outside and "budget decides" not in outside


def test_text_form_hides_the_verdicts():
    for text in (str(QUESTION), repr(QUESTION)):
        assert "A. A: 97.74%" in text and "JupyterLab" in text
        assert "Yes." not in text and "right" not in text and "fits the budget" not in text


def test_a_quiz_without_a_right_answer_is_refused():
    with pytest.raises(ValueError, match="right answer"):
        quiz.ask("?", [("a", False, ""), ("b", False, "")])


@pytest.mark.skipif(shutil.which("chromium") is None, reason="no Chromium on this machine (Debian: apt-get install chromium)")
def test_a_browser_shows_an_answer_only_once_it_is_opened(tmp_path):
    """Headless Chromium, scripts off for the quiz itself: the page's own probe opens answer B
    the way a click does and reports what is visible before and after."""
    probe = """<script>
      const why = document.querySelectorAll('.effcourse-answer div')[1];
      const seen = () => Number(why.checkVisibility());
      const before = seen();
      document.querySelectorAll('.effcourse-answer')[1].open = true;
      const after = seen();
      document.body.insertAdjacentHTML('beforeend', `<p id="probe">before=${before} after=${after}</p>`);
    </script>"""
    page = tmp_path / "quiz.html"
    page.write_text(f"<html><body>{QUESTION._repr_html_()}{probe}</body></html>", encoding="utf-8")
    done = subprocess.run([shutil.which("chromium"), "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                           page.as_uri()], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'id="probe">before=0 after=1<' in done.stdout

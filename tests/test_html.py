"""report.html and index.html: self-contained pages, checked as text and in a real headless browser.

The browser tests drive Debian's Chromium through Selenium. Without the
browser they are skipped, except where REGSEARCH_REQUIRE_BROWSER=1 (CI sets
it, after installing the browser): there a missing browser fails them.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from regsearch.report import summary_frame, trials_frame, write_index, write_report
from regsearch.report.html import report_html
from regsearch.report.sections import words
from test_report import make_history, make_records

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def records_with_baseline() -> list[dict]:
    """make_records' six configurations (and a failed one), plus a baseline run per seed."""
    baseline = [{**make_records()[0], "trial_id": "baseline-0000", "phase": "baseline", "repeat": repeat,
                 "seed": 10 + repeat, "param_kind": "none", "param_strength": float("nan"),
                 "test_accuracy": 0.80 + 0.01 * repeat, "test_loss": 0.3} for repeat in (0, 1)]
    return make_records() + baseline


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results folder with two searches, each with report.html, and index.html; the tests only read it."""
    tmp_path = tmp_path_factory.mktemp("results")
    for name, description in (("moons_reg", "L1 and L2 on <moons> & friends"), ("other", "a second search")):
        records = [{**r, "search": name} for r in records_with_baseline()]
        write_report(tmp_path / name, records, {"0004/0": make_history(), "baseline-0000/0": make_history()},
                     search_name=name, rerun_command=f"python -m regsearch {name}", objective="test_accuracy",
                     direction="max", definition_text=f'name = "{name}"', description=description)
    write_index(tmp_path)
    return tmp_path


def test_the_page_puts_the_answer_first_and_needs_no_network(results: Path) -> None:
    page = (results / "moons_reg" / "report.html").read_text(encoding="utf-8")
    answer = page.index('id="answer"')
    assert answer < page.index("<img") < page.index('id="ranked"') < page.index('id="definition"')
    assert "kind=l2, strength=0.001" in page[answer:page.index("</p>", answer)]
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing fetched from a network
    assert "<script src" not in page and "<link" not in page
    # accuracy_vs_strength, learning_curves (with the baseline's), score_heatmap (kind x strength), differences
    assert page.count('src="data:image/png;base64,') == 4
    assert "L1 and L2 on &lt;moons&gt; &amp; friends" in page  # escaped, not markup
    assert "python -m regsearch moons_reg" in page
    assert 'id="comparison"' in page
    assert "<td class=\"number\">+0.0950</td>" in page  # l2 1e-3 (0.89, 0.91) minus the baseline's (0.80, 0.81)


@pytest.mark.parametrize(("objective", "direction", "said"), [("test_accuracy", "max", "(higher is better)"),
                                                            ("test_loss", "min", "(lower is better)")])
def test_the_page_says_which_way_its_objective_is_better(objective: str, direction: str, said: str) -> None:
    summary = summary_frame(trials_frame(make_records()), objective=objective, direction=direction)
    page = report_html(summary, search_name="s", rerun_command="python -m regsearch s", objective=objective)
    assert f"by mean {words(objective)} {said}" in page


def test_the_index_links_every_search_with_its_answer(results: Path) -> None:
    index = (results / "index.html").read_text(encoding="utf-8")
    assert re.findall(r'<a href="([^"]+)">', index) == ["moons_reg/report.html", "other/report.html"]
    # +0.095 over 2 seeds, corrected for 6 configurations (Bonferroni: no per-row outcomes here), is not beyond noise.
    assert index.count("No configuration is distinguishable from no regularization") == 2


@pytest.fixture(scope="session")  # one browser per test process: starting one takes seconds
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        if os.environ.get("REGSEARCH_REQUIRE_BROWSER") == "1":
            pytest.fail("REGSEARCH_REQUIRE_BROWSER=1 but chromium or chromedriver is missing "
                        "(apt-get install chromium chromium-driver)")
        pytest.skip("no chromium and chromedriver (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1600"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    yield driver
    driver.quit()


def _errors(driver) -> list[dict]:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def _column(driver, table: str, header: str) -> list[str]:
    return driver.execute_script(
        """const table = document.querySelector(arguments[0]);
           const index = [...table.tHead.rows[0].cells].findIndex(c => c.textContent.trim() === arguments[1]);
           return [...table.tBodies[0].rows].map(r => r.cells[index].textContent.trim());""", table, header)


def _click(driver, table: str, header: str) -> None:
    from selenium.webdriver.common.by import By

    cells = driver.find_elements(By.CSS_SELECTOR, f"{table} thead th")
    next(cell for cell in cells if cell.text.strip().rstrip("↕↑↓ ").strip() == header).click()


def test_the_page_loads_without_errors_and_every_image_decodes(browser, results: Path) -> None:
    browser.get((results / "moons_reg" / "report.html").as_uri())
    assert _errors(browser) == []
    images = browser.execute_script(
        "return [...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight]);")
    assert len(images) == 4
    assert all(complete and width > 400 and height > 200 for complete, width, height in images)


def test_clicking_a_header_sorts_the_ranked_table(browser, results: Path) -> None:
    browser.get((results / "moons_reg" / "report.html").as_uri())
    table = "#ranked + p + div table"
    ranked = _column(browser, table, "rank")
    assert ranked == sorted(ranked, key=int)
    _click(browser, table, "strength")  # numbers as numbers: 1e-06 < 1e-05 < 0.001 < 0.1; the baseline's "none" last
    strengths = _column(browser, table, "strength")
    assert strengths[-1] == "none" and strengths[:-1] == sorted(strengths[:-1], key=float)
    assert strengths[0] == "1e-06" and strengths[-2] == "0.1"
    _click(browser, table, "strength")  # a second click reverses the numbers; words stay last
    assert _column(browser, table, "strength") == sorted(strengths[:-1], key=float, reverse=True) + ["none"]
    _click(browser, table, "kind")  # text
    kinds = _column(browser, table, "kind")
    assert kinds == sorted(kinds) and kinds != [row for row in kinds if row == kinds[0]]
    _click(browser, table, "test accuracy")  # "0.900 ± 0.010" sorts by its mean; the failed run's empty cell last
    accuracies = _column(browser, table, "test accuracy")
    assert accuracies[-1] == "" and [float(a.split(" ")[0]) for a in accuracies[:-1]] == sorted(
        float(a.split(" ")[0]) for a in accuracies[:-1])
    assert _errors(browser) == []


def test_the_index_opens_each_page(browser, results: Path) -> None:
    from selenium.webdriver.common.by import By

    browser.get((results / "index.html").as_uri())
    assert _errors(browser) == []
    browser.find_element(By.LINK_TEXT, "other").click()
    assert browser.title == "other: regsearch"
    assert "a second search" in browser.find_element(By.CSS_SELECTOR, ".what").text
    assert browser.find_element(By.ID, "answer").text.startswith(
        "No configuration is distinguishable from no regularization: the selected kind=l2, strength=0.001")

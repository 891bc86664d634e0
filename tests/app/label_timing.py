"""Keyboard-only labeling in a real browser, timed: shared by the browser test and `bench.bench_labeling`.

`install_timer(page)` marks each key press (keydown, capture phase) and each time the pair on screen changes (a
MutationObserver on the Label tab that compares the two sides and the heading with what was there before: a
loading overlay or a re-render of the same pair is not a new pair);
`label_with_keys(page, n, quota)` presses 1 / 2 by turns and waits for the progress text after each key, and
returns the milliseconds from each key press to the next pair being on screen.
"""

from __future__ import annotations

TIMER_JS = """
() => {
  window.__vtKeys = []; window.__vtShown = [];
  const part = (id) => (document.querySelector(`#${id} .prose`) || {}).innerHTML || "";  // the HTML, not the spinner
  const pair = () => ["vt-side-a", "vt-side-b", "vt-target"].map(part).join("|");
  let last = pair();
  document.addEventListener("keydown", () => window.__vtKeys.push(performance.now()), true);
  new MutationObserver(() => {
    const now = pair();
    if (now !== last) { last = now; window.__vtShown.push(performance.now()); }
  }).observe(document.querySelector("#vt-side-a").closest(".tabitem") || document.body,
             {childList: true, subtree: true, characterData: true});
}
"""


def install_timer(page) -> None:
    page.evaluate(TIMER_JS)


def label_with_keys(page, n: int, quota: int, keys: str = "12") -> list[float]:
    """Press `n` keys (cycling through `keys`), each after the previous label is in; returns the ms from each
    press to the first change of the pair on screen after it (the next pair, or the completion code)."""
    for i in range(n):
        page.keyboard.press(keys[i % len(keys)])
        page.wait_for_function(
            "([done, quota]) => (document.querySelector('#vt-label-progress') || {}).innerText"
            "?.includes(`${done} of ${quota} labels`)", arg=[i + 1, quota])
        page.wait_for_function("k => window.__vtShown.some(t => t > window.__vtKeys[k])", arg=i)
    return page.evaluate(
        "() => window.__vtKeys.map(k => Math.min(...window.__vtShown.filter(t => t > k)) - k)")

"""The page's own JavaScript and the hint that names its keys: the keyboard shortcuts and the pickers' typed
text (`HEAD`, in every page's <head>), the slate's click and focus script (`CARD_JS`, the slate's js_on_load), and
the focus moves after an action (`FOCUS_PICKS`, `FOCUS_CREATE_ITEM`)."""

from __future__ import annotations

__all__ = ["CARD_JS", "FOCUS_CREATE_ITEM", "FOCUS_PICKS", "HEAD", "KEYS_HINT"]

# Keyboard shortcuts. On a focused Discover card (or one of its buttons): l / d / o / u click its Like / Dislike /
# Open / Undo button. On the Label tab: 1 / 2 / 0 / s / u click the matching button while it is visible.
HEAD = """
<script>
(() => {
  const keys = {"1": "vt-key-1", "2": "vt-key-2", "0": "vt-key-0", "s": "vt-key-s", "u": "vt-key-u"};
  const cardKeys = {"l": "like", "d": "dislike", "o": "open", "u": "undo"};
  // Enter in a picker, unless a suggestion was chosen with the arrow keys: the user picker takes the id as typed
  // (its box loses the focus, which commits the typed text); an item picker takes the first suggestion shown that
  // is not chosen yet. Gradio's own Enter takes the suggestion highlighted at the last key, which is stale while a
  // search is on its way, and none at all in a multiselect.
  let navigated = false;
  // What is typed in a picker's box is copied, 150 ms after the last key, to its hidden twin (#<picker>-typed),
  // whose change event searches: the search always reads the latest text, however fast the typing.
  const timers = {};
  document.addEventListener("input", (event) => {
    const input = event.target;
    const picker = input && input.tagName === "INPUT" && input.closest ?
      input.closest("#vt-user, #vt-picks, #vt-create-item") : null;
    if (!picker) return;
    clearTimeout(timers[picker.id]);
    timers[picker.id] = setTimeout(() => {
      const twin = document.querySelector("#" + picker.id + "-typed textarea, #" + picker.id + "-typed input");
      if (!twin || twin.value === input.value) return;
      twin.value = input.value;
      twin.dispatchEvent(new Event("input", {bubbles: true}));
    }, 150);
  }, true);
  document.addEventListener("keydown", (event) => {
    const input = event.target;
    const picker = input && input.tagName === "INPUT" && input.closest ?
      input.closest("#vt-user, #vt-picks, #vt-create-item") : null;
    if (!picker) return;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") { navigated = true; return; }
    if (event.key !== "Enter") { navigated = false; return; }
    if (navigated || event.isComposing || !input.value.trim()) return;
    event.preventDefault();
    event.stopImmediatePropagation();
    if (picker.id === "vt-user") {
      // Escape first: the dropdown handles a key after a tick, and the last letter's turn would open the list again
      input.dispatchEvent(new KeyboardEvent("keydown", {key: "Escape", bubbles: true}));
      input.blur();
      return;
    }
    const option = [...picker.querySelectorAll("[role=option]")].find((o) => o.getAttribute("aria-selected") !== "true");
    if (option) option.dispatchEvent(new MouseEvent("mousedown", {bubbles: true, cancelable: true}));
  }, true);
  document.addEventListener("keydown", (event) => {
    const target = event.target;
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    const card = target && target.closest ? target.closest("#vt-slate .vt-card[data-slot]") : null;
    if (card) {
      const action = cardKeys[(event.key || "").toLowerCase()];
      const button = action ? card.querySelector('button[data-action="' + action + '"]') : null;
      if (button) { event.preventDefault(); button.click(); }
      return;
    }
    if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.isContentEditable)) return;
    const id = keys[(event.key || "").toLowerCase()];
    if (!id) return;
    const button = document.getElementById(id);
    if (!button || button.offsetParent === null || button.disabled) return;
    event.preventDefault();
    button.click();
  });
})();
</script>
"""


# The slate's script (gr.HTML js_on_load): a click on a card's button sends {action, slot} as the HTML's click
# event; after the slate re-renders (a like, a cover that arrived), the card that had the focus gets it back.
CARD_JS = """
let focused = null;
element.addEventListener("focusin", (e) => {
  const card = e.target.closest("[data-slot]");
  focused = card ? card.dataset.slot : null;
});
element.addEventListener("focusout", (e) => {
  if (e.relatedTarget && !element.contains(e.relatedTarget)) focused = null;
});
element.addEventListener("click", (e) => {
  const button = e.target.closest("button[data-action]");
  if (!button || !element.contains(button)) return;
  trigger("click", {action: button.dataset.action, slot: Number(button.dataset.slot)});
});
watch("value", () => {
  if (focused === null) return;
  const active = document.activeElement;
  if (active && active !== document.body && document.contains(active)) return;
  const card = element.querySelector('[data-slot="' + focused + '"]');
  if (card) (card.querySelector("button[data-action]") || card).focus({preventScroll: true});
});
"""

KEYS_HINT = ('<p class="vt-keys" id="vt-keys">Keyboard: <kbd>Tab</kbd> to a card, then <kbd>l</kbd> like · '
             "<kbd>d</kbd> dislike · <kbd>o</kbd> open · <kbd>u</kbd> undo. On the Label tab: <kbd>1</kbd> left · "
             "<kbd>2</kbd> right · <kbd>0</kbd> tie · <kbd>s</kbd> skip · <kbd>u</kbd> undo.</p>")
FOCUS_PICKS = "() => { const input = document.querySelector('#vt-picks input'); if (input) input.focus(); }"
FOCUS_CREATE_ITEM = "() => { const input = document.querySelector('#vt-create-item input'); if (input) input.focus(); }"

// Keyboard shortcuts of the annotator page. Every key presses a button that is on the page anyway
// (data-key), so htmx does the rest and the keyboard never does anything a mouse cannot.
(function () {
  const MAX_MATCHES = 12;
  // One action at a time: keys pressed before the next video is in place are dropped. "In place" is
  // after htmx settled the new item: until then its buttons would submit as plain forms.
  let busy = false;
  document.body.addEventListener("htmx:beforeRequest", () => { busy = true; });
  document.body.addEventListener("htmx:afterSettle", () => { busy = false; });
  document.body.addEventListener("htmx:afterRequest", (event) => {
    if (!event.detail.successful) busy = false; // an error swaps nothing, so nothing will settle
  });

  function typing(target) {
    return target.closest("input, textarea, select, [contenteditable]") !== null;
  }

  function press(key) {
    const button = document.querySelector(`#item [data-key="${key}"]`);
    if (button && !button.disabled) button.click();
    return button !== null;
  }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    if (event.key === "/") {
      const search = document.getElementById("label-search");
      if (search) {
        event.preventDefault();
        search.focus();
      }
      return;
    }
    if (!/^[1-9su]$/.test(event.key)) return;
    event.preventDefault();
    if (!busy && !event.repeat) press(event.key);
  });

  // The search: filter the list of every offered label as one types; Enter picks the first match,
  // Escape leaves the box so the number keys work again.
  function filter(input) {
    const form = document.getElementById("label-matches");
    if (!form) return [];
    const query = input.value.trim().toLowerCase();
    const shown = [];
    for (const button of form.querySelectorAll("button[data-name]")) {
      const match = query !== "" && button.dataset.name.includes(query) && shown.length < MAX_MATCHES;
      button.parentElement.hidden = !match;
      if (match) shown.push(button);
    }
    form.querySelector(".no-match").hidden = query === "" || shown.length > 0;
    return shown;
  }

  document.addEventListener("input", (event) => {
    if (event.target.id === "label-search") filter(event.target);
  });

  document.addEventListener("keydown", (event) => {
    if (event.target.id !== "label-search") return;
    if (event.key === "Enter") {
      event.preventDefault();
      const first = filter(event.target)[0];
      if (first && !busy) {
        event.target.blur(); // else htmx gives the next item's search box the focus, eating the keys
        first.click();
      }
    } else if (event.key === "Escape") {
      event.target.value = "";
      filter(event.target);
      event.target.blur();
    }
  });

  // Each new item arrives with the full list: hide it until something is typed.
  htmx.onLoad((element) => {
    const input = element.querySelector ? element.querySelector("#label-search") : null;
    if (input) filter(input);
  });
})();

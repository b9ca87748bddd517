// The calendar of all homes: one menu for the whole page. A free night is a link that
// starts a booking there (it works without this script); with it, a click opens the
// menu beside the night, offering the booking or a block of that night.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const grid = document.getElementById("multi-calendar");
  const menu = document.getElementById("mc-menu");
  if (!grid || !menu) return;
  const book = menu.querySelector(".mc-book");
  const block = menu.querySelector(".mc-block");
  let opener = null;

  function close(refocus) {
    if (menu.hidden) return;
    menu.hidden = true;
    if (opener) {
      opener.setAttribute("aria-expanded", "false");
      if (refocus) opener.focus();
    }
    opener = null;
  }

  function open(cell) {
    close(false);
    const query = new URL(cell.href).searchParams;
    const day = cell.dataset.day;
    const home = cell.closest('[role="row"]').querySelector('[role="rowheader"] a');
    menu.querySelector("strong").textContent = (home ? home.textContent + ", " : "") + day;
    book.href = cell.href;
    book.querySelector("span").textContent = day;
    block.href = menu.dataset.addBlock + "?" + new URLSearchParams({
      property: query.get("property"),
      start: query.get("check_in"),
      end: query.get("check_out"),
    });
    block.querySelector("span").textContent = day;
    const box = cell.getBoundingClientRect();
    const scroller = menu.parentElement; // .mc-scroll, position: relative
    const frame = scroller.getBoundingClientRect();
    menu.style.left = (box.left - frame.left + scroller.scrollLeft) + "px";
    menu.style.top = (box.bottom - frame.top + scroller.scrollTop) + "px";
    menu.hidden = false;
    opener = cell;
    cell.setAttribute("aria-expanded", "true");
    book.focus();
  }

  grid.addEventListener("click", (event) => {
    const cell = event.target.closest("a.mc-free");
    if (!cell || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    if (opener === cell) close(true);
    else open(cell);
  });
  document.addEventListener("click", (event) => {
    if (!menu.hidden && !menu.contains(event.target) && !event.target.closest("a.mc-free")) close(false);
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") close(true);
  });
});

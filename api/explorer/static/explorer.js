// Progressive enhancement: a "Copy" button beside each citation and the shareable link. The
// pages work without it; nothing here fetches anything.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // The page is cached whatever host it was asked through: the full address is the reader's.
  for (const field of document.querySelectorAll("input[data-absolute]")) {
    field.value = new URL(field.value, location.href).href;
  }
  for (const target of document.querySelectorAll(".copyable")) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "copy";
    button.textContent = "Copy";
    const label = target.getAttribute("aria-labelledby");
    const name = label ? document.getElementById(label)?.textContent : "";
    button.setAttribute("aria-label", name ? `Copy ${name}` : "Copy");
    // What a click did, said to screen readers too (the button's own name stays the same).
    const status = document.createElement("span");
    status.className = "visually-hidden";
    status.setAttribute("role", "status");
    button.addEventListener("click", async () => {
      const text = "value" in target && target.value ? target.value : target.textContent;
      try {
        await navigator.clipboard.writeText(text);
        button.textContent = "Copied";
        status.textContent = name ? `${name} copied` : "Copied";
      } catch {
        // No clipboard (an insecure origin, a refused permission): select it for the reader.
        const range = document.createRange();
        range.selectNodeContents(target);
        getSelection().removeAllRanges();
        getSelection().addRange(range);
        if (typeof target.select === "function") target.select();
        button.textContent = "Selected: press Ctrl+C";
        status.textContent = "Selected: press Ctrl+C to copy";
      }
    });
    target.after(button, status);
  }
  // A chart's frame is a stop for the keyboard only where it scrolls (a narrow screen).
  for (const frame of document.querySelectorAll(".chart-scroll")) {
    const fits = () => frame.scrollWidth <= frame.clientWidth;
    const place = () => (fits() ? frame.removeAttribute("tabindex") : frame.setAttribute("tabindex", "0"));
    place();
    addEventListener("resize", place);
  }
});

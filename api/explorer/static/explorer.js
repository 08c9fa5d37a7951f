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
    button.addEventListener("click", async () => {
      const text = "value" in target && target.value ? target.value : target.textContent;
      try {
        await navigator.clipboard.writeText(text);
        button.textContent = "Copied";
      } catch {
        // No clipboard (an insecure origin, a refused permission): select it for the reader.
        const range = document.createRange();
        range.selectNodeContents(target);
        getSelection().removeAllRanges();
        getSelection().addRange(range);
        if (typeof target.select === "function") target.select();
        button.textContent = "Selected: press Ctrl+C";
      }
    });
    target.after(button);
  }
});

// Copy the completion code to the clipboard (for panels where it is pasted).
const button = document.getElementById("copy-code");
const code = document.getElementById("completion-code");
if (button && code) {
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(code.textContent.trim());
      button.textContent = button.dataset.copied;
    } catch {
      window.getSelection().selectAllChildren(code);
    }
  });
}

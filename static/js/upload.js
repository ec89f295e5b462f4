// Upload many files with a byte-level progress bar, then let htmx poll processing progress.
(function () {
  const form = document.getElementById("upload-form");
  const input = document.getElementById("files");
  const bar = document.getElementById("upload-bar");
  const target = document.getElementById("batch");
  const dropzone = form.querySelector(".dropzone");

  dropzone.addEventListener("dragover", (e) => { e.preventDefault(); dropzone.classList.add("over"); });
  dropzone.addEventListener("dragleave", () => dropzone.classList.remove("over"));
  dropzone.addEventListener("drop", (e) => {
    e.preventDefault();
    dropzone.classList.remove("over");
    input.files = e.dataTransfer.files;
  });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!input.files.length) return;
    // The server enforces the same limits while the body streams in; checking here first saves
    // sending a large file only to have it refused.
    const mb = 1024 * 1024;
    const tooBig = [...input.files].filter((f) => f.size > form.dataset.maxFileMb * mb);
    const total = [...input.files].reduce((sum, f) => sum + f.size, 0);
    const refusal = tooBig.length
      ? `${tooBig.map((f) => f.name).join(", ")}: larger than the ${form.dataset.maxFileMb} MB limit per file.`
      : total > form.dataset.maxRequestMb * mb
        ? `These files add up to more than ${form.dataset.maxRequestMb} MB: upload them in smaller groups.`
        : "";
    bar.hidden = false;
    const fill = bar.querySelector(".bar");
    const label = bar.querySelector(".label");
    if (refusal) {
      label.textContent = refusal;
      return;
    }
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("HX-Request", "true");
    xhr.upload.addEventListener("progress", (e) => {
      if (!e.lengthComputable) return;
      const pct = Math.round((100 * e.loaded) / e.total);
      fill.style.width = pct + "%";
      label.textContent = `Uploading ${input.files.length} file(s): ${pct}%`;
    });
    xhr.addEventListener("load", () => {
      if (xhr.status >= 400) {
        const reason = xhr.getResponseHeader("Content-Type")?.startsWith("text/plain") ? `: ${xhr.responseText}` : "";
        label.textContent = `Upload failed (${xhr.status})${reason}`;
        return;
      }
      label.textContent = "Uploaded";
      target.innerHTML = xhr.responseText;
      htmx.process(target);
      form.reset();
    });
    xhr.addEventListener("error", () => { label.textContent = "Upload failed: network error"; });
    xhr.send(new FormData(form));
  });
})();

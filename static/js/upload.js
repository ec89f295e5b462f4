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
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("HX-Request", "true");
    bar.hidden = false;
    const fill = bar.querySelector(".bar");
    const label = bar.querySelector(".label");
    xhr.upload.addEventListener("progress", (e) => {
      if (!e.lengthComputable) return;
      const pct = Math.round((100 * e.loaded) / e.total);
      fill.style.width = pct + "%";
      label.textContent = `Uploading ${input.files.length} file(s): ${pct}%`;
    });
    xhr.addEventListener("load", () => {
      if (xhr.status >= 400) {
        label.textContent = `Upload failed (${xhr.status})`;
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

// The portal's few behaviours, as a file (the Content-Security-Policy allows no inline script).
document.addEventListener("click", (event) => {
  const button = event.target instanceof Element ? event.target.closest("[data-print]") : null;
  if (button) {
    window.print();
  }
});

// A form with data-upload (a rate sheet) is sent by XMLHttpRequest, so that its progress can be shown: the
// bytes sent, then "checking" while the server reads the sheet. Success follows the server's redirect; any
// other answer replaces the page's content (a refused sheet lists its errors). Without JavaScript the form
// posts as any other.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-upload")) {
    return;
  }
  event.preventDefault();
  const box = form.querySelector("[data-upload-progress]");
  const status = form.querySelector("[data-upload-status]");
  const bar = box ? box.querySelector("progress") : null;
  const button = form.querySelector("button[type=submit]");
  const say = (text) => { if (status) { status.textContent = text; } };
  if (box) { box.hidden = false; }
  if (button) { button.disabled = true; }
  const failed = () => {
    say(form.dataset.failed);
    if (button) { button.disabled = false; }
  };
  say(form.dataset.uploading);
  const request = new XMLHttpRequest();
  request.open("POST", form.action);
  request.upload.addEventListener("progress", (progress) => {
    if (bar && progress.lengthComputable) {
      bar.value = Math.round((100 * progress.loaded) / progress.total);
    }
  });
  request.upload.addEventListener("load", () => {
    if (bar) { bar.removeAttribute("value"); }  // indeterminate while the server checks the sheet
    say(form.dataset.checking);
  });
  request.addEventListener("load", () => {
    const answered = new URL(request.responseURL || form.action, window.location.href);
    if (request.status === 200 && answered.pathname !== new URL(form.action, window.location.href).pathname) {
      window.location.assign(answered.href);
      return;
    }
    const page = new DOMParser().parseFromString(request.responseText, "text/html");
    const main = page.querySelector("main");
    const current = document.querySelector("main");
    if (main && current) {
      current.replaceWith(document.importNode(main, true));
      document.title = page.title;
      document.querySelector("main").focus();
    } else {
      failed();
    }
  });
  request.addEventListener("error", failed);
  request.send(new FormData(form));
});

// A form that takes a while (a large batch of accounts) says it is working and cannot be sent twice.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.dataset.working) {
    return;
  }
  const note = document.getElementById(form.dataset.working);
  if (note) {
    note.hidden = false;
  }
  for (const button of form.querySelectorAll("button[type=submit]")) {
    button.disabled = true;
  }
});

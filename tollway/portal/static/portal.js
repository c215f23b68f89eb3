// The portal's few behaviours, as a file (the Content-Security-Policy allows no inline script).
document.addEventListener("click", (event) => {
  const button = event.target instanceof Element ? event.target.closest("[data-print]") : null;
  if (button) {
    window.print();
  }
});

// Keeps a page's live part current: the server sends the part's new HTML as server-sent
// events. Without JavaScript the page refreshes itself (see its <noscript>).
(function () {
  var live = document.getElementById("live");
  if (!live || !window.EventSource) return;
  var source = new EventSource(live.getAttribute("data-events"));
  window.sluiceLive = source; // so a reader can pause the updates
  var stamp = document.getElementById("updated");
  source.onmessage = function (event) {
    live.innerHTML = event.data;
    if (stamp) stamp.textContent = "live · updated " + new Date().toLocaleTimeString();
  };
  source.onerror = function () {
    if (stamp) stamp.textContent = "live updates paused (reconnecting)";
  };
})();

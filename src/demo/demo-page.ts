/**
 * The page `recgw demo` serves at /demo: guacamole-common-js's own client (served beside it at
 * /demo/guacamole-common.js) connected through this gateway's WebSocket with the token in the
 * page's query string, showing the live session scaled to the window. `window.recgwDemo` lets a
 * test (or a curious person at the console) read the client's state.
 */
export const DEMO_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>recgw demo</title>
<style>
  html, body { margin: 0; height: 100%; background: #1e1e1e; color: #ddd; font: 14px system-ui, sans-serif; }
  header { padding: 6px 10px; background: #333; display: flex; gap: 1em; align-items: baseline; }
  header b { color: #fff; }
  #status.error { color: #f88; }
  #screen { position: absolute; top: 32px; left: 0; right: 0; bottom: 0; overflow: hidden; }
</style>
</head>
<body>
<header><b>recgw demo</b><span id="status">loading…</span></header>
<div id="screen"></div>
<script type="module">
import Guacamole from '/demo/guacamole-common.js';

const STATE_NAMES = ['idle', 'connecting', 'waiting for the first frame', 'connected', 'disconnecting', 'disconnected'];
const statusEl = document.getElementById('status');
const screen = document.getElementById('screen');
const demo = { states: [], errors: [], syncs: 0, client: null };
window.recgwDemo = demo;

function show(text, isError) {
  statusEl.textContent = text;
  statusEl.className = isError ? 'error' : '';
}

const token = new URLSearchParams(location.search).get('token');
if (!token) {
  show('no token in the address: open the URL recgw demo printed', true);
} else {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const tunnel = new Guacamole.WebSocketTunnel(scheme + '//' + location.host + '/');
  const client = new Guacamole.Client(tunnel);
  demo.client = client;
  const display = client.getDisplay();
  screen.appendChild(display.getElement());

  const fit = () => {
    const w = display.getWidth(), h = display.getHeight();
    if (w && h) display.scale(Math.min(screen.clientWidth / w, screen.clientHeight / h, 1));
  };
  display.onresize = fit;
  window.addEventListener('resize', fit);

  client.onstatechange = (state) => {
    demo.states.push(state);
    show(STATE_NAMES[state] ?? String(state), false);
  };
  client.onerror = (status) => {
    demo.errors.push({ code: status.code, message: status.message });
    show('error ' + status.code + ': ' + status.message, true);
  };
  tunnel.onerror = (status) => {
    demo.errors.push({ code: status.code, message: status.message });
    show('tunnel error ' + status.code + ': ' + status.message, true);
  };
  client.onsync = () => { demo.syncs++; };

  // Mouse moves go to guacd and into the recording as mouse lines (display scale undone).
  const mouse = new Guacamole.Mouse(display.getElement());
  mouse.onEach(['mousedown', 'mouseup', 'mousemove'], (e) => client.sendMouseState(e.state, true));

  // Keys go to guacd too (recorded only with RECORDING_INCLUDE_KEYS=true).
  const keyboard = new Guacamole.Keyboard(document);
  keyboard.onkeydown = (keysym) => { client.sendKeyEvent(1, keysym); };
  keyboard.onkeyup = (keysym) => { client.sendKeyEvent(0, keysym); };

  window.addEventListener('beforeunload', () => client.disconnect());
  client.connect('token=' + encodeURIComponent(token));
}

/** What a test reads back: state, errors, size, and the picture's luminance variance (0 = blank). */
demo.status = () => {
  const d = demo.client?.getDisplay();
  let variance = 0;
  if (d && d.getWidth() > 0) {
    const canvas = d.flatten();
    const px = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let n = 0, sum = 0, sumSq = 0;
    for (let i = 0; i < px.length; i += 4) {
      const v = px[i] * 0.299 + px[i + 1] * 0.587 + px[i + 2] * 0.114;
      sum += v; sumSq += v * v; n++;
    }
    variance = n ? sumSq / n - (sum / n) ** 2 : 0;
  }
  return { states: demo.states.slice(), errors: demo.errors.slice(), syncs: demo.syncs, width: d?.getWidth() ?? 0, height: d?.getHeight() ?? 0, variance };
};
</script>
</body>
</html>
`;

/*
 * stomp-relay demo page: plain browser script, no build step.
 *
 * Flow: get a dev token (POST /api/dev/token) before every connect attempt, so a reconnect after a
 * token has expired or an instance has drained still works; open SockJS (/ws) or a plain WebSocket
 * (/stomp); on each CONNECTED subscribe again (subscriptions do not survive a reconnect). Everything
 * that came from the network is shown with textContent only.
 *
 * /app/echo answers on /user/queue/echo, which every session of the user gets: each tab of alice
 * sees every tab's echo. The reply does not say which session sent it, so the page remembers what
 * it sent itself and labels each echo "from this tab" or "from another tab or device of alice".
 * When the connection is lost the page says it is disconnected and clears the instance and session
 * it showed, since they no longer hold.
 *
 * The inbox panel (durable pushes to /user/queue/inbox, this browser as one device) is inbox.js.
 *
 * Query parameters (handy for tests and demos): user, transport=sockjs|websocket, room,
 * autoconnect=1, sockjs_transports=a,b (limits SockJS, e.g. xhr-streaming to force the fallback).
 */
(function () {
  'use strict';

  const MAX_MESSAGES = 200;
  const RECONNECT_DELAY_MS = 2000;
  const STOMP_SUBPROTOCOLS = ['v12.stomp', 'v11.stomp', 'v10.stomp'];
  const ECHO_DESTINATION = '/user/queue/echo';
  /** Echoes this tab sent and has not seen come back; older ones are forgotten. */
  const ECHO_MEMORY_MS = 60000;

  const params = new URLSearchParams(location.search);
  const inbox = window.stompRelayInbox;
  /** This browser as a device of the user: the inbox keeps its progress (inbox.js). */
  const deviceId = inbox.deviceId();
  const $ = (id) => document.getElementById(id);
  const el = {
    state: document.querySelector('[data-testid="state"]'),
    stateDetail: document.querySelector('[data-testid="state-detail"]'),
    lastError: document.querySelector('[data-testid="last-error"]'),
    instance: document.querySelector('[data-testid="instance"]'),
    session: document.querySelector('[data-testid="session"]'),
    userName: document.querySelector('[data-testid="user-name"]'),
    transport: document.querySelector('[data-testid="transport"]'),
    transportKind: document.querySelector('[data-testid="transport-kind"]'),
    subscriptions: document.querySelector('[data-testid="subscriptions"]'),
    messageCount: document.querySelector('[data-testid="message-count"]'),
    copyStatus: document.querySelector('[data-testid="copy-status"]'),
    connectForm: $('connect-form'),
    user: $('user'),
    transportChoice: $('transport-choice'),
    room: $('room'),
    connect: $('connect'),
    disconnect: $('disconnect'),
    chatForm: $('chat-form'),
    chatText: $('chat-text'),
    chatDestination: $('chat-destination'),
    sendChat: $('send-chat'),
    echoForm: $('echo-form'),
    echoText: $('echo-text'),
    sendEcho: $('send-echo'),
    curl: $('curl'),
    copyCurl: $('copy-curl'),
    messages: $('messages'),
    empty: $('empty'),
    clear: $('clear'),
  };

  /** @type {any} the StompJs.Client while the person wants to be connected, else null */
  let client = null;
  /** @type {any} the SockJS object of the current attempt (its `transport` is known once open) */
  let sock = null;
  let messageCount = 0;
  let roomSubscription = null;
  let subscribedRoom = '';
  /** @type {{ body: string, at: number }[]} */
  let pendingEchoes = [];

  // ---- initial form values -------------------------------------------------------------------

  el.user.value = params.get('user') || 'alice';
  el.transportChoice.value = params.get('transport') === 'websocket' ? 'websocket' : 'sockjs';
  el.room.value = params.get('room') || 'lobby';
  const sockjsTransports = (params.get('sockjs_transports') || '')
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t.length > 0);
  showChatDestination();
  document.querySelector('[data-testid="device-id"]').textContent = deviceId;

  // ---- small view helpers --------------------------------------------------------------------

  function setText(node, text) {
    node.textContent = text === undefined || text === null || text === '' ? '–' : String(text);
  }

  function setState(state, detail) {
    el.state.textContent = state;
    el.state.dataset.state = state.startsWith('error') ? 'error' : state;
    el.stateDetail.textContent = detail || '';
  }

  function showLastError(text) {
    el.lastError.hidden = false;
    el.lastError.textContent = 'Last error (' + new Date().toLocaleTimeString() + '): ' + text;
  }

  function errorText(err) {
    return err instanceof Error ? err.message : String(err);
  }

  function roomName() {
    return el.room.value.trim() || 'lobby';
  }

  function showChatDestination() {
    el.chatDestination.textContent = '/app/chat/' + roomName();
  }

  function setConnectedControls(connected) {
    el.sendChat.disabled = !connected;
    el.sendEcho.disabled = !connected;
  }

  function setActiveControls(active) {
    el.connect.disabled = active;
    el.disconnect.disabled = !active;
    el.user.disabled = active;
    el.transportChoice.disabled = active;
  }

  function clearSessionFacts() {
    for (const node of [el.instance, el.session, el.userName, el.transport, el.subscriptions])
      setText(node, '');
    el.transportKind.textContent = '';
  }

  // ---- message list --------------------------------------------------------------------------

  function formatBody(body) {
    if (body === undefined || body === null) return '';
    const text = String(body);
    if (text.length === 0) return '(empty body)';
    try {
      const parsed = JSON.parse(text);
      if (parsed !== null && typeof parsed === 'object') return JSON.stringify(parsed, null, 2);
    } catch {
      // not JSON: shown as it came
    }
    return text;
  }

  /** Adds one entry at the top of the list. kind: 'message' (a MESSAGE frame) | 'error' (an ERROR frame) */
  function addEntry(kind, destination, sender, body) {
    const item = document.createElement('li');
    item.className = 'message ' + kind;
    item.setAttribute('data-testid', kind === 'error' ? 'error-message' : 'message');
    item.dataset.destination = destination;

    const head = document.createElement('div');
    head.className = 'message-head';
    const dest = document.createElement('span');
    dest.className = 'destination';
    dest.setAttribute('data-testid', 'message-destination');
    dest.textContent = destination;
    head.appendChild(dest);
    if (sender) {
      const from = document.createElement('span');
      from.className = 'sender';
      from.setAttribute('data-testid', 'message-sender');
      from.textContent = 'from ' + sender;
      head.appendChild(from);
    }
    const time = document.createElement('time');
    time.className = 'time';
    time.textContent = new Date().toLocaleTimeString();
    head.appendChild(time);

    const text = document.createElement('pre');
    text.className = 'body';
    text.setAttribute('data-testid', 'message-body');
    text.textContent = formatBody(body);

    item.appendChild(head);
    item.appendChild(text);
    el.messages.insertBefore(item, el.messages.firstChild);
    while (el.messages.children.length > MAX_MESSAGES) el.messages.removeChild(el.messages.lastChild);

    messageCount += 1;
    el.messageCount.textContent = String(messageCount);
    el.empty.hidden = true;
  }

  /** True (and forgotten) if this tab sent `body` to /app/echo and has not seen it come back yet. */
  function takeOwnEcho(body) {
    const now = Date.now();
    pendingEchoes = pendingEchoes.filter((echo) => now - echo.at < ECHO_MEMORY_MS);
    const index = pendingEchoes.findIndex((echo) => echo.body === body);
    if (index < 0) return false;
    pendingEchoes.splice(index, 1);
    return true;
  }

  function echoSender(body) {
    if (takeOwnEcho(body)) return 'this tab';
    return 'another tab or device of ' + (el.userName.textContent || 'this user');
  }

  function onMessage(message) {
    const headers = message.headers || {};
    const destination = headers.destination || '(no destination)';
    const sender = destination === ECHO_DESTINATION ? echoSender(message.body) : headers.sender;
    addEntry('message', destination, sender, message.body);
  }

  // ---- subscriptions -------------------------------------------------------------------------

  function subscribeRoom() {
    if (!client || !client.connected) return;
    const room = roomName();
    if (roomSubscription && subscribedRoom === room) return;
    if (roomSubscription) roomSubscription.unsubscribe();
    roomSubscription = client.subscribe('/topic/chat.' + room, onMessage);
    subscribedRoom = room;
    showSubscriptions();
  }

  function showSubscriptions() {
    setText(
      el.subscriptions,
      [
        '/user/queue/greetings',
        '/user/queue/echo',
        '/topic/chat.' + subscribedRoom,
        inbox.destination + ' (ack client-individual)',
      ].join('\n'),
    );
  }

  // ---- connecting ----------------------------------------------------------------------------

  /** The server did not answer at all (stopped, restarting, or the network is gone). */
  class UnreachableError extends Error {}

  async function fetchToken(user) {
    let res;
    try {
      res = await fetch('/api/dev/token', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ user: user, scope: 'push' }),
      });
    } catch {
      // fetch() says only "Failed to fetch": no answer came back.
      throw new UnreachableError('cannot reach the server (stopped, restarting or offline)');
    }
    let payload = null;
    try {
      payload = await res.json();
    } catch {
      // a non-JSON answer is reported by status below
    }
    if (!res.ok || !payload || typeof payload.token !== 'string') {
      const reason = payload && payload.error ? payload.error : 'HTTP ' + res.status;
      throw new Error('token request failed: ' + reason);
    }
    return payload.token;
  }

  /** encodeURIComponent, plus the characters it leaves that a shell would read: ! ' ( ) * */
  function pathSegment(text) {
    return encodeURIComponent(text).replace(
      /[!'()*]/g,
      (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase(),
    );
  }

  function showCurl(user, token) {
    const body = JSON.stringify({ destination: '/queue/greetings', body: 'hello' });
    el.curl.textContent =
      'curl -X POST ' +
      location.origin +
      '/api/users/' +
      pathSegment(user) +
      "/messages -H 'Authorization: Bearer " +
      token +
      "' -H 'Content-Type: application/json' -d '" +
      body +
      "'";
    el.copyCurl.disabled = false;
    inbox.showCurl(location.origin, pathSegment(user), token);
  }

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  function createSocket(kind) {
    if (kind === 'websocket') {
      sock = null;
      const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
      return new window.WebSocket(scheme + '://' + location.host + '/stomp', STOMP_SUBPROTOCOLS);
    }
    const options = sockjsTransports.length > 0 ? { transports: sockjsTransports } : {};
    sock = new SockJS('/ws', null, options);
    return sock;
  }

  function connect() {
    if (client) return;
    const user = el.user.value.trim();
    if (!user) {
      setState('error: enter a user name');
      return;
    }
    const kind = el.transportChoice.value;
    if (kind === 'websocket' && typeof window.WebSocket !== 'function') {
      setState('error: this browser has no WebSocket; choose SockJS');
      return;
    }
    setActiveControls(true);
    clearSessionFacts();

    const stomp = new StompJs.Client({
      reconnectDelay: RECONNECT_DELAY_MS,
      heartbeatIncoming: 10000,
      heartbeatOutgoing: 10000,
      webSocketFactory: () => createSocket(kind),
    });

    // Runs before every attempt, the first and each reconnect. It must not reject (stompjs would
    // stop retrying), so a failed token request is shown and retried here.
    stomp.beforeConnect = async () => {
      while (client === stomp && stomp.active) {
        setState('connecting', 'requesting a token for ' + user);
        try {
          const token = await fetchToken(user);
          stomp.connectHeaders = { Authorization: 'Bearer ' + token, 'device-id': deviceId };
          showCurl(user, token);
          setState('connecting', 'opening ' + (kind === 'websocket' ? 'WebSocket /stomp' : 'SockJS /ws'));
          return;
        } catch (err) {
          const retry = 'retrying in ' + RECONNECT_DELAY_MS / 1000 + ' s';
          if (err instanceof UnreachableError) setState('disconnected', errorText(err) + '; ' + retry);
          else setState('error: ' + errorText(err), retry);
          showLastError(errorText(err));
          await sleep(RECONNECT_DELAY_MS);
        }
      }
    };

    stomp.onConnect = (frame) => {
      if (client !== stomp) return;
      const h = frame.headers;
      setState('connected', 'STOMP ' + (h.version || '?') + (h.server ? ' · ' + h.server : ''));
      setText(el.instance, h.instance);
      setText(el.session, h.session);
      setText(el.userName, h['user-name']);
      setText(el.transport, kind === 'websocket' ? 'websocket' : sock && sock.transport);
      el.transportKind.textContent = kind === 'websocket' ? '(plain WebSocket)' : '(SockJS)';
      setConnectedControls(true);

      roomSubscription = null;
      subscribedRoom = '';
      stomp.subscribe('/user/queue/greetings', onMessage);
      stomp.subscribe(ECHO_DESTINATION, onMessage);
      inbox.subscribe(stomp);
      subscribeRoom();
    };

    stomp.onStompError = (frame) => {
      if (client !== stomp) return;
      const message = frame.headers.message || 'ERROR frame without a message';
      setState('error: ' + message, 'the server closes the connection; reconnecting');
      showLastError(message);
      const body = (frame.body || '').trim();
      addEntry('error', 'ERROR', '', body && body !== message ? message + '\n' + body : message);
    };

    stomp.onWebSocketClose = (event) => {
      if (client !== stomp) return;
      setConnectedControls(false);
      roomSubscription = null;
      // The instance and session shown were those of the connection that just ended.
      clearSessionFacts();
      const why = 'connection closed (' + event.code + (event.reason ? ' ' + event.reason : '') + ')';
      const next = why + '; reconnecting in ' + RECONNECT_DELAY_MS / 1000 + ' s';
      // An ERROR frame just before (a drain, a refused token) says more than the close: keep it.
      if (el.state.dataset.state === 'error') el.stateDetail.textContent = next;
      else setState('disconnected', next);
    };

    stomp.onWebSocketError = () => {
      // The close event that follows carries the code; nothing more is known here.
    };

    client = stomp;
    stomp.activate();
  }

  async function disconnect() {
    const stomp = client;
    client = null;
    sock = null;
    roomSubscription = null;
    setConnectedControls(false);
    setActiveControls(false);
    setState('disconnected');
    clearSessionFacts();
    if (stomp) {
      try {
        await stomp.deactivate();
      } catch (err) {
        showLastError(errorText(err));
      }
    }
  }

  // ---- sending -------------------------------------------------------------------------------

  function publish(destination, input) {
    const text = input.value;
    if (!client || !client.connected || text.length === 0) return;
    try {
      client.publish({ destination: destination, body: text });
      if (destination === '/app/echo') pendingEchoes.push({ body: text, at: Date.now() });
      input.value = '';
      input.focus();
    } catch (err) {
      showLastError(errorText(err));
    }
  }

  // ---- wiring --------------------------------------------------------------------------------

  el.connectForm.addEventListener('submit', (event) => {
    event.preventDefault();
    connect();
  });
  el.disconnect.addEventListener('click', () => {
    void disconnect();
  });
  el.room.addEventListener('change', () => {
    showChatDestination();
    subscribeRoom();
  });
  el.room.addEventListener('input', showChatDestination);
  el.chatForm.addEventListener('submit', (event) => {
    event.preventDefault();
    publish('/app/chat/' + roomName(), el.chatText);
  });
  el.echoForm.addEventListener('submit', (event) => {
    event.preventDefault();
    publish('/app/echo', el.echoText);
  });
  el.clear.addEventListener('click', () => {
    el.messages.textContent = '';
    messageCount = 0;
    el.messageCount.textContent = '0';
    el.empty.hidden = false;
  });
  el.copyCurl.addEventListener('click', async () => {
    const text = el.curl.textContent || '';
    try {
      await navigator.clipboard.writeText(text);
      el.copyStatus.textContent = 'Copied.';
    } catch {
      // Clipboard API refused (plain http on another host, permissions): select it for Ctrl+C.
      const range = document.createRange();
      range.selectNodeContents(el.curl);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      el.copyStatus.textContent = 'Selected: press Ctrl+C (or ⌘C) to copy.';
    }
  });

  if (typeof StompJs === 'undefined' || typeof SockJS === 'undefined') {
    setState('error: client libraries did not load (/vendor)');
    el.connect.disabled = true;
    return;
  }
  if (params.get('autoconnect') === '1') connect();
})();

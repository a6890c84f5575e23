/*
 * The demo page's inbox panel (SPEC "The inbox: pushes that wait for the user"), apart from app.js.
 *
 * This browser is one device of the user: a `device-id` kept in localStorage goes on every CONNECT,
 * so what was pushed to /user/queue/inbox while the page was closed arrives when it opens, in
 * order, and what this device acknowledged does not come again. Each message is acknowledged once
 * it is on the page (ack `client-individual`, with a receipt, so "acked" means the server has it);
 * one that arrives again (not acknowledged before the page closed) says "redelivered".
 * Everything that came from the network is shown with textContent only.
 *
 * app.js calls: deviceId(), subscribe(stompClient) on every CONNECTED, showCurl(origin, userPath, token).
 */
(function () {
  'use strict';

  const DESTINATION = '/user/queue/inbox';
  const MAX_SHOWN = 200;
  const DEVICE_KEY = 'stomp-relay.device-id';

  const list = document.getElementById('inbox-messages');
  const empty = document.getElementById('inbox-empty');
  const count = document.querySelector('[data-testid="inbox-count"]');
  const curl = document.getElementById('inbox-curl');
  /** seqs on the page: a redelivery updates its entry instead of adding a second one */
  const shown = new Map();
  let receipts = 0;

  function randomId() {
    const bytes = new Uint8Array(9);
    window.crypto.getRandomValues(bytes);
    return 'browser-' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  /** This browser's device id (1-64 of A-Z a-z 0-9 _ -), made once and kept. */
  function deviceId() {
    let id = null;
    try {
      id = localStorage.getItem(DEVICE_KEY);
    } catch {
      // storage off (private mode): a new device per page load
    }
    if (!id || !/^[A-Za-z0-9_-]{1,64}$/.test(id)) {
      id = randomId();
      try {
        localStorage.setItem(DEVICE_KEY, id);
      } catch {
        // as above
      }
    }
    return id;
  }

  function setState(entry, state) {
    const badge = entry.querySelector('[data-testid="inbox-state"]');
    badge.textContent = state;
    entry.dataset.state = state;
  }

  function entryFor(seq, message) {
    const item = document.createElement('li');
    item.className = 'message inbox';
    item.setAttribute('data-testid', 'inbox-message');
    item.dataset.seq = String(seq);

    const head = document.createElement('div');
    head.className = 'message-head';
    const seqText = document.createElement('span');
    seqText.className = 'destination';
    seqText.setAttribute('data-testid', 'inbox-seq');
    seqText.textContent = '#' + seq;
    head.appendChild(seqText);
    const state = document.createElement('span');
    state.className = 'sender';
    state.setAttribute('data-testid', 'inbox-state');
    head.appendChild(state);
    if (message.headers.redelivered === 'true') {
      const again = document.createElement('span');
      again.className = 'sender';
      again.setAttribute('data-testid', 'inbox-redelivered');
      again.textContent = 'redelivered';
      head.appendChild(again);
    }
    const body = document.createElement('pre');
    body.className = 'body';
    body.setAttribute('data-testid', 'inbox-body');
    body.textContent = message.body;
    item.appendChild(head);
    item.appendChild(body);
    return item;
  }

  function onMessage(client, message) {
    const seq = Number(message.headers['inbox-seq']);
    let entry = shown.get(seq);
    if (!entry) {
      entry = entryFor(seq, message);
      shown.set(seq, entry);
      // Oldest first, as they were pushed: the panel reads like a mailbox.
      list.appendChild(entry);
      while (list.children.length > MAX_SHOWN) {
        const first = list.firstChild;
        shown.delete(Number(first.dataset.seq));
        list.removeChild(first);
      }
      count.textContent = String(shown.size);
      empty.hidden = true;
    }
    setState(entry, 'shown');
    // Acknowledged once on the page; "acked" once the server's RECEIPT says it recorded it.
    const receipt = 'inbox-ack-' + ++receipts;
    client.watchForReceipt(receipt, () => setState(entry, 'acked'));
    message.ack({ receipt: receipt });
  }

  /**
   * Subscribes to the inbox only where the service has one: with BROKER_URL set and no
   * INBOX_DATABASE_URL the inbox is off, and a SUBSCRIBE to it would get an ERROR that ends the
   * whole STOMP session (SPEC). /readyz says which ("inbox": "off"); if it cannot be read, subscribe
   * and let the server say why.
   */
  function subscribe(client) {
    fetch('/readyz', { cache: 'no-store' })
      .then((answer) => answer.json())
      .catch(() => ({}))
      .then((ready) => {
        if (!client.connected) return;
        if (ready && ready.inbox === 'off') {
          empty.textContent = 'This service runs without an inbox (no INBOX_DATABASE_URL).';
          empty.hidden = false;
          return;
        }
        client.subscribe(DESTINATION, (message) => onMessage(client, message), { ack: 'client-individual' });
      });
  }

  function showCurl(origin, userPath, token) {
    const body = JSON.stringify({ destination: DESTINATION, body: 'kept until this device has it' });
    curl.textContent =
      'curl -X POST ' +
      origin +
      '/api/users/' +
      userPath +
      "/messages -H 'Authorization: Bearer " +
      token +
      "' -H 'Content-Type: application/json' -H 'Idempotency-Key: demo-" +
      Date.now().toString(36) +
      "' -d '" +
      body +
      "'";
  }

  window.stompRelayInbox = {
    deviceId: deviceId,
    subscribe: subscribe,
    showCurl: showCurl,
    destination: DESTINATION,
  };
})();

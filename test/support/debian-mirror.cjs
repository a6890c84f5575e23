'use strict';
/**
 * Which Debian archive this machine's apt fetches from, read from its own configuration, so that a
 * script that needs a mirror (ensure-rabbitmq4.cjs's debootstrap) names no host itself: the
 * one-line format of sources.list and sources.list.d/*.list, and the deb822 format of
 * sources.list.d/*.sources (Enabled: no honoured). A Debian archive is an entry for a Debian
 * release (a codename or stable/testing/unstable); -updates, -security and other archives are not.
 */
const fs = require('node:fs');
const path = require('node:path');

/** The Debian archive this machine's apt uses: the URI of a deb entry for a Debian release. */
function debianMirror(aptDir = '/etc/apt') {
  const releases = /^(stable|testing|unstable|oldstable|sid|buster|bullseye|bookworm|trixie|forky|duke)$/;
  const entries = [];
  const listFiles = [path.join(aptDir, 'sources.list')];
  const sourcesFiles = [];
  try {
    for (const name of fs.readdirSync(path.join(aptDir, 'sources.list.d')).sort()) {
      const file = path.join(aptDir, 'sources.list.d', name);
      if (name.endsWith('.list')) listFiles.push(file);
      if (name.endsWith('.sources')) sourcesFiles.push(file);
    }
  } catch {
    // no sources.list.d
  }
  for (const file of listFiles) {
    if (!fs.existsSync(file)) continue;
    for (const raw of fs.readFileSync(file, 'utf8').split('\n')) {
      const line = raw
        .replace(/#.*/, '')
        .replace(/\[[^\]]*\]/, ' ')
        .trim();
      const [type, uri, suite] = line.split(/\s+/);
      if (type === 'deb' && uri && suite) entries.push({ uris: [uri], suites: [suite] });
    }
  }
  for (const file of sourcesFiles) {
    for (const stanza of fs.readFileSync(file, 'utf8').split(/\n\s*\n/)) {
      const fields = {};
      for (const raw of stanza.split('\n')) {
        const m = /^([A-Za-z-]+):\s*(.*)$/.exec(raw.replace(/#.*/, ''));
        if (m) fields[m[1].toLowerCase()] = m[2].trim();
      }
      if (!(fields.types || '').split(/\s+/).includes('deb') || /^no$/i.test(fields.enabled || '')) continue;
      entries.push({ uris: (fields.uris || '').split(/\s+/), suites: (fields.suites || '').split(/\s+/) });
    }
  }
  for (const entry of entries) {
    if (entry.suites.some((s) => releases.test(s)) && entry.uris[0]) return entry.uris[0].replace(/\/+$/, '');
  }
  return undefined;
}

module.exports = { debianMirror };

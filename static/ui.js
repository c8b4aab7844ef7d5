// bulk-import admin UI: copy and download buttons, and the live refresh of
// the imports dashboard (from /admin/imports.json) and of a running import's
// page.  Plain JavaScript, no framework; every page also works without it.
(function () {
  'use strict';

  // ------------------------------------------------------------ copy, download
  function showButtons(root) {
    root.querySelectorAll('button.copy, button.download').forEach(function (b) { b.hidden = false; });
  }

  function textOf(id) {
    var el = document.getElementById(id);
    if (!el) return '';
    return el.tagName === 'TEXTAREA' || el.tagName === 'INPUT' ? el.value : el.textContent;
  }

  function flash(button, text) {
    var old = button.dataset.label || button.textContent;
    button.dataset.label = old;
    button.textContent = text;
    button.classList.add('copied');
    setTimeout(function () { button.textContent = old; button.classList.remove('copied'); }, 1500);
  }

  function copyFallback(text) {
    var ta = document.createElement('textarea');
    ta.value = text;
    ta.setAttribute('readonly', '');
    ta.style.position = 'fixed';   // CSSOM, not an inline style attribute: allowed by the CSP
    ta.style.top = '-1000px';
    document.body.appendChild(ta);
    ta.select();
    var ok = false;
    try { ok = document.execCommand('copy'); } catch (e) { ok = false; }
    document.body.removeChild(ta);
    return ok;
  }

  function copy(button) {
    var text = textOf(button.dataset.copy);
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { flash(button, 'Copied'); },
        function () { flash(button, copyFallback(text) ? 'Copied' : 'Copy failed'); });
    } else {
      flash(button, copyFallback(text) ? 'Copied' : 'Copy failed');
    }
  }

  function download(button) {
    var name = button.dataset.filename || 'key.txt';
    var type = /\.json$/.test(name) ? 'application/json' : 'application/x-pem-file';
    var url = URL.createObjectURL(new Blob([textOf(button.dataset.download)], { type: type }));
    var a = document.createElement('a');
    a.href = url;
    a.download = name;
    document.body.appendChild(a);
    a.click();
    document.body.removeChild(a);
    setTimeout(function () { URL.revokeObjectURL(url); }, 10000);
  }

  document.addEventListener('click', function (ev) {
    var b = ev.target.closest ? ev.target.closest('button[data-copy], button[data-download]') : null;
    if (!b) return;
    if (b.dataset.copy) copy(b); else download(b);
  });

  // ------------------------------------------------------------ dashboard
  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    (children || []).forEach(function (c) { e.append(c); });   // strings become text nodes
    return e;
  }

  // The same row as the import_row macro in templates/macros.cs.
  function importRow(root, i) {
    var pct = String(i.pct);
    function td(label, cls, children) {
      var attrs = { 'data-label': label };
      if (cls) attrs['class'] = cls;
      return el('td', attrs, children);
    }
    return el('tr', { 'data-import': i.id }, [
      td('Import', '', [el('a', { href: root + '/admin/imports/' + encodeURIComponent(i.id) }, [i.id.slice(0, 8)])]),
      td('Client', '', [el('a', { href: root + '/admin/clients/' + encodeURIComponent(i.client_id) }, [i.client])]),
      td('Type', '', [i.type]),
      td('State', '', [el('span', { 'class': 'state state-' + i.state }, [i.state])]),
      td('Progress', 'progress', [el('progress', { max: '100', value: pct, 'aria-label': 'Progress' }, [pct + ' %']),
        ' ', el('span', { 'class': 'pct' }, [pct + ' %'])]),
      td('Files', 'num', [i.files]),
      td('Resources', 'num', [i.resources]),
      td('Bytes', 'num', [i.bytes]),
      td('Throughput', 'num', [i.throughput]),
      td('Started', 'when', [i.started]),
      td('Duration', 'num', [i.duration]),
    ]);
  }

  function dashboard(table) {
    var src = table.dataset.src, root = table.dataset.root || '';
    var live = document.getElementById('live');
    var running = Number(table.dataset.running) > 0;

    function render(data) {
      var body = el('tbody', {}, data.imports.map(function (i) { return importRow(root, i); }));
      table.replaceChild(body, table.tBodies[0]);
      table.dataset.running = String(data.running);
      if (live) live.textContent = data.running > 0 ? data.running + ' running.' : 'Nothing running.';
    }

    function tick() {
      fetch(src, { headers: { accept: 'application/json' }, cache: 'no-store', credentials: 'same-origin' })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) {
          if (data) { render(data); running = data.running > 0; }
        }, function () { /* network hiccup: try again later */ })
        .then(function () { setTimeout(tick, running ? 2000 : 10000); });
    }
    // every 2 s while something runs; every 10 s otherwise, to notice new pings
    setTimeout(tick, running ? 2000 : 10000);
  }

  // ------------------------------------------------------------ one import
  function importPage(box) {
    function tick() {
      fetch(location.href, { cache: 'no-store', credentials: 'same-origin' })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (!html) return true;
          var fresh = new DOMParser().parseFromString(html, 'text/html').getElementById('import');
          if (!fresh) return true;
          fresh = document.importNode(fresh, true);
          box.replaceWith(fresh);
          box = fresh;
          showButtons(box);
          return box.dataset.running === '1';
        }, function () { return true; })
        .then(function (again) { if (again) setTimeout(tick, 2000); });
    }
    setTimeout(tick, 2000);
  }

  showButtons(document);
  var table = document.getElementById('imports');
  if (table && table.dataset.src) dashboard(table);
  var box = document.getElementById('import');
  if (box && box.dataset.running === '1') importPage(box);
})();

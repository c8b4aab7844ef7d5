<?cs def:content() ?>
<section aria-labelledby="h-endpoints">
<h2 id="h-endpoints">What a provider needs</h2>
<p>Register each Data Provider on the <a href="<?cs var:Root ?>/admin/clients">Clients</a> page first; it then gets a client_id for these endpoints.</p>
<div class="scroll">
<table>
<thead><tr><th scope="col">Endpoint</th><th scope="col">URL</th><th scope="col">Notes</th></tr></thead>
<tbody>
<?cs each:e = Endpoints ?>
<tr><th scope="row"><?cs var:e.Label ?></th><td><code id="ep-<?cs name:e ?>"><?cs var:e.Url ?></code> <?cs call:copy("ep-" + name(e), "URL") ?></td><td><?cs var:e.Note ?></td></tr>
<?cs /each ?>
</tbody>
</table>
</div>
</section>

<section aria-labelledby="h-key">
<h2 id="h-key">The consumer's public key</h2>
<p>The worker signs its token requests to providers with this key. Providers that cannot fetch the JWKS URL above can be given the key itself.</p>
<?cs if:Keys.Problem ?><p class="error"><?cs var:Keys.Problem ?></p><?cs /if ?>
<?cs each:k = Keys ?><?cs if:k.Jwk ?>
<h3>Key <code><?cs var:k.Kid ?></code><?cs if:k.Alg ?> (<?cs var:k.Alg ?>)<?cs /if ?></h3>
<div class="keypair">
<div>
<h4 id="ck-jwk-<?cs name:k ?>-h">JWK</h4>
<pre id="ck-jwk-<?cs name:k ?>" aria-labelledby="ck-jwk-<?cs name:k ?>-h"><?cs var:k.Jwk ?></pre>
<?cs call:copy("ck-jwk-" + name(k), "JWK") ?> <?cs call:download("ck-jwk-" + name(k), "JWK", "consumer-public.jwk.json") ?>
</div>
<div>
<h4 id="ck-pem-<?cs name:k ?>-h">PEM</h4>
<pre id="ck-pem-<?cs name:k ?>" aria-labelledby="ck-pem-<?cs name:k ?>-h"><?cs var:k.Pem ?></pre>
<?cs call:copy("ck-pem-" + name(k), "PEM") ?> <?cs call:download("ck-pem-" + name(k), "PEM", "consumer-public.pem") ?>
</div>
</div>
<?cs /if ?><?cs /each ?>
</section>

<section aria-labelledby="h-storage">
<h2 id="h-storage">Storage</h2>
<dl class="facts">
<dt>Destination</dt><dd><code><?cs var:Storage.Dir ?></code> (one folder per import)</dd>
<dt>Retention</dt><dd>Stored files are kept until an administrator removes them; there is no automatic clean-up. Files of cancelled imports are <?cs var:Storage.CancelledFiles ?>.</dd>
<dt>Time limit per import</dt><dd><?cs var:Storage.Deadline ?> s</dd>
</dl>
</section>

<section aria-labelledby="h-workers">
<h2 id="h-workers">Workers and queue</h2>
<dl class="facts">
<dt>Worker processes alive</dt><dd id="workers-alive"><?cs var:Workers.Processes ?><?cs if:Workers.Draining != "0" ?> (<?cs var:Workers.Draining ?> stopping)<?cs /if ?></dd>
<dt>Imports being worked on</dt><dd><?cs var:Workers.Busy ?> (up to <?cs var:Workers.ThreadsEach ?> per worker process)</dd>
<dt>Queue</dt><dd id="queue-length"><?cs var:Stats.queued ?> queued<?cs if:Stats.OldestQueued ?>, the oldest waiting for <?cs var:Stats.OldestQueued ?><?cs /if ?></dd>
<dt>Finished</dt><dd><?cs var:Stats.complete ?> complete, <?cs var:Stats.failed ?> failed, <?cs var:Stats.cancelled ?> cancelled</dd>
<dt>Clients</dt><dd><?cs var:Stats.clients ?> registered, <?cs var:Stats.enabled ?> enabled</dd>
</dl>
<p class="hint">Each worker process reports itself every <?cs var:Workers.Lease ?> s; one silent for two periods is counted as gone. If imports stay queued while no worker is alive, check that <code>bulk-import-worker</code> runs.</p>
</section>
<?cs /def ?>

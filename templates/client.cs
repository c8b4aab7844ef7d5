<?cs def:content() ?>
<h2 class="subtitle"><?cs var:Client.name ?> <?cs call:client_state(Client.enabled) ?></h2>

<section aria-labelledby="h-hand">
<h2 id="h-hand">What to hand to the provider</h2>
<dl class="facts">
<dt>client_id</dt><dd><code id="hand-client-id"><?cs var:Client.id ?></code> <?cs call:copy("hand-client-id", "client_id") ?></dd>
<dt>Token endpoint</dt><dd><code id="hand-token"><?cs var:Hand.TokenUrl ?></code> <?cs call:copy("hand-token", "URL") ?></dd>
<dt>Ping URL ($import)</dt><dd><code id="hand-import"><?cs var:Hand.ImportUrl ?></code> <?cs call:copy("hand-import", "URL") ?></dd>
<dt>Authentication</dt><dd>SMART Backend Services: client_credentials with a private_key_jwt assertion (RS256/384/512, ES256/384/512), scope system/*.write</dd>
<dt>SMART configuration</dt><dd><code><?cs var:Hand.SmartConfig ?></code></dd>
</dl>
<p class="hint">For pulling data this server is registered at the provider as <code><?cs if:Client.provider_client_id ?><?cs var:Client.provider_client_id ?><?cs else ?>(no client_id: open access)<?cs /if ?></code>, with the key set at <code><?cs var:Hand.JwksUrl ?></code>.</p>
</section>

<section aria-labelledby="h-settings">
<h2 id="h-settings">Settings</h2>
<dl class="facts">
<dt>Provider FHIR base URL</dt><dd><code><?cs var:Client.fhir_base_url ?></code></dd>
<dt>Provider authentication</dt><dd><?cs var:Client.provider_auth ?></dd>
<dt>Consumer's client_id at the provider</dt><dd><?cs if:Client.provider_client_id ?><?cs var:Client.provider_client_id ?><?cs else ?>none<?cs /if ?></dd>
<dt>Scope</dt><dd><?cs if:Client.scope ?><?cs var:Client.scope ?><?cs else ?>server default<?cs /if ?></dd>
<dt>Kick-off method</dt><dd><?cs var:Client.kickoff_method ?></dd>
<dt>Created</dt><dd><?cs var:Client.created ?></dd>
<dt>Changed</dt><dd><?cs var:Client.updated ?></dd>
</dl>
<form method="post" action="<?cs var:Root ?>/admin/clients/<?cs var:Client.id ?>/state" class="inline">
<?cs call:csrf() ?>
<?cs if:Client.enabled == "t" ?>
<input type="hidden" name="enabled" value="0">
<button type="submit">Disable client</button> <span class="hint">It can then neither get tokens nor ping; running imports continue.</span>
<?cs else ?>
<input type="hidden" name="enabled" value="1">
<button type="submit">Enable client</button>
<?cs /if ?>
</form>
</section>

<section aria-labelledby="h-imports">
<h2 id="h-imports">Imports</h2>
<?cs if:Client.n_imports == 0 ?>
<p class="empty">No imports yet.</p>
<?cs else ?>
<p class="count"><?cs var:Client.n_imports ?> import<?cs if:Client.n_imports != 1 ?>s<?cs /if ?><?cs if:Client.n_imports > ImportsLimit ?>, the newest <?cs var:ImportsLimit ?> shown<?cs /if ?>.</p>
<div class="scroll">
<table class="cards">
<?cs call:import_head(0) ?>
<tbody>
<?cs each:i = Imports ?><?cs call:import_row(i, 0) ?><?cs /each ?>
</tbody>
</table>
</div>
<?cs /if ?>
</section>

<section aria-labelledby="h-edit">
<h2 id="h-edit">Edit</h2>
<?cs if:Errors.edit.Any ?><p class="error" role="alert">Not saved: <?cs var:Errors.edit.Any ?></p><?cs /if ?>
<form method="post" action="<?cs var:Root ?>/admin/clients/<?cs var:Client.id ?>" novalidate>
<?cs call:csrf() ?>
<?cs call:text_field("edit", "name", "Name", "text", "") ?>
<?cs call:text_field("edit", "fhir_base_url", "Provider FHIR base URL", "url", "") ?>
<?cs call:select_auth("edit") ?>
<?cs call:text_field("edit", "provider_client_id", "Consumer's client_id at the provider", "text", "") ?>
<?cs call:advanced("edit") ?>
<?cs if:Errors.edit.general ?><p class="field-error"><?cs var:Errors.edit.general ?></p><?cs /if ?>
<p><button type="submit">Save changes</button></p>
</form>
</section>

<section aria-labelledby="h-keys">
<h2 id="h-keys">Keys</h2>
<?cs if:Client.jwks_uri ?>
<p>Keys are fetched from <code><?cs var:Client.jwks_uri ?></code><?cs if:Client.jwks_fetched ?> (last fetched <?cs var:Client.jwks_fetched ?>)<?cs /if ?>.</p>
<?cs else ?>
<p>Keys were pasted (JWKS stored here).</p>
<?cs /if ?>
<?cs if:Client.Keys.0.kty ?>
<ul class="keys">
<?cs each:k = Client.Keys ?><li><code><?cs var:k.kid ?></code>: <?cs var:k.kty ?><?cs if:k.crv ?> <?cs var:k.crv ?><?cs /if ?><?cs if:k.alg ?>, <?cs var:k.alg ?><?cs /if ?></li><?cs /each ?>
</ul>
<?cs /if ?>
<?cs if:Client.JwksPretty ?><details><summary>JWKS</summary><pre><?cs var:Client.JwksPretty ?></pre></details><?cs /if ?>
<?cs if:Errors.keys.Any ?><p class="error" role="alert">Keys not replaced: <?cs var:Errors.keys.Any ?></p><?cs /if ?>
<form method="post" action="<?cs var:Root ?>/admin/clients/<?cs var:Client.id ?>/keys" novalidate>
<?cs call:csrf() ?>
<?cs call:key_fields("keys") ?>
<p><button type="submit">Replace keys</button> <span class="hint">The client's access tokens are revoked.</span></p>
</form>
</section>

<section aria-labelledby="h-delete">
<h2 id="h-delete">Delete</h2>
<p><a class="button danger" href="<?cs var:Root ?>/admin/clients/<?cs var:Client.id ?>/delete">Delete this client…</a></p>
</section>
<?cs /def ?>

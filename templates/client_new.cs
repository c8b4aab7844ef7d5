<?cs def:content() ?>
<p>Register a Data Provider that may ping this server. It gets a client_id here and authenticates with its private key; you enter its public key.</p>
<?cs if:Errors.reg.Any ?><p class="error" role="alert">The client was not registered: <?cs var:Errors.reg.Any ?></p><?cs /if ?>
<form method="post" action="<?cs var:Root ?>/admin/clients/new" novalidate>
<?cs call:csrf() ?>
<?cs call:text_field("reg", "name", "Name", "text", "Shown in this admin UI, e.g. the provider's organisation.") ?>
<?cs call:text_field("reg", "fhir_base_url", "Provider FHIR base URL", "url", "Every exportUrl the provider pings with must lie under it, e.g. https://ehr.example/fhir") ?>
<?cs call:key_fields("reg") ?>
<?cs call:select_auth("reg") ?>
<?cs call:text_field("reg", "provider_client_id", "Consumer's client_id at the provider", "text", "The client_id the provider gave this server (for pulling data); not needed for open providers.") ?>
<?cs call:advanced("reg") ?>
<?cs if:Errors.reg.general ?><p class="field-error"><?cs var:Errors.reg.general ?></p><?cs /if ?>
<p><button type="submit">Register client</button></p>
</form>
<p class="hint">No key yet? The <a href="<?cs var:Root ?>/admin/keys">key generator</a> makes a pair and fills in the public key here.</p>
<?cs /def ?>

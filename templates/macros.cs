<?cs # Macros shared by the pages. ?>
<?cs # The hidden CSRF field every POST form carries (checked in main.c). ?>
<?cs def:csrf() ?><input type="hidden" name="csrf" value="<?cs var:Csrf ?>"><?cs /def ?>
<?cs # Field-level error: the paragraph a field points at with aria-describedby. ?>
<?cs def:field_error(form, name) ?><?cs if:Errors[form][name] ?><p class="field-error" id="<?cs var:form ?>-<?cs var:name ?>-error"><?cs var:Errors[form][name] ?></p><?cs /if ?><?cs /def ?>
<?cs def:invalid(form, name) ?><?cs if:Errors[form][name] ?> aria-invalid="true" aria-describedby="<?cs var:form ?>-<?cs var:name ?>-error"<?cs /if ?><?cs /def ?>
<?cs # An import's state as a badge. ?>
<?cs def:state(s) ?><span class="state state-<?cs var:s ?>"><?cs var:s ?></span><?cs /def ?>
<?cs # A client's state (the enabled column, "t" or "f") as a badge. ?>
<?cs def:client_state(enabled) ?><?cs if:enabled == "t" ?><span class="state state-enabled">enabled</span><?cs else ?><span class="state state-disabled">disabled</span><?cs /if ?><?cs /def ?>
<?cs # Copy and download buttons for the text of element `id` (shown by ui.js). ?>
<?cs def:copy(id, label) ?><button type="button" class="copy" data-copy="<?cs var:id ?>" hidden>Copy <?cs var:label ?></button><?cs /def ?>
<?cs def:download(id, label, file) ?><button type="button" class="download" data-download="<?cs var:id ?>" data-filename="<?cs var:file ?>" hidden>Download <?cs var:label ?></button><?cs /def ?>
<?cs # A progress bar with its number. ?>
<?cs def:progress(pct, label) ?><progress max="100" value="<?cs var:pct ?>" aria-label="<?cs var:label ?>"><?cs var:pct ?> %</progress> <span class="pct"><?cs var:pct ?> %</span><?cs /def ?>
<?cs # aria-describedby/aria-invalid of field `name` in form `form` (hint and error paragraphs). ?>
<?cs def:described(form, name, hint) ?><?cs if:hint || Errors[form][name] ?> aria-describedby="<?cs if:hint ?><?cs var:form ?>-<?cs var:name ?>-hint<?cs /if ?><?cs if:hint && Errors[form][name] ?> <?cs /if ?><?cs if:Errors[form][name] ?><?cs var:form ?>-<?cs var:name ?>-error<?cs /if ?>"<?cs /if ?><?cs if:Errors[form][name] ?> aria-invalid="true"<?cs /if ?><?cs /def ?>
<?cs def:hint(form, name, hint) ?><?cs if:hint ?><p class="hint" id="<?cs var:form ?>-<?cs var:name ?>-hint"><?cs var:hint ?></p><?cs /if ?><?cs /def ?>
<?cs # A labelled one-line input with hint and error. ?>
<?cs def:text_field(form, name, label, type, hint) ?>
<div class="field">
<label for="<?cs var:form ?>-<?cs var:name ?>"><?cs var:label ?></label>
<?cs call:hint(form, name, hint) ?>
<input id="<?cs var:form ?>-<?cs var:name ?>" name="<?cs var:name ?>" type="<?cs var:type ?>" value="<?cs var:Form[form][name] ?>"<?cs call:described(form, name, hint) ?>>
<?cs call:field_error(form, name) ?>
</div>
<?cs /def ?>
<?cs # The public key fields (pasted JWK/JWKS or a JWKS URL) of the register and replace-keys forms. ?>
<?cs def:key_fields(form) ?>
<fieldset>
<legend>Public key of the provider (it signs its token requests with the private key)</legend>
<div class="field">
<label for="<?cs var:form ?>-jwks">Public key as JWK or JWKS</label>
<?cs call:hint(form, "jwks", 'Paste a JWKS {"keys":[...]} or a single public JWK. A JWK without kid gets its RFC 7638 thumbprint.') ?>
<textarea id="<?cs var:form ?>-jwks" name="jwks" rows="8" spellcheck="false"<?cs call:described(form, "jwks", "x") ?>><?cs var:Form[form].jwks ?></textarea>
<?cs call:field_error(form, "jwks") ?>
</div>
<?cs call:text_field(form, "jwks_uri", "or a JWKS URL", "url", "Fetched and checked now, then cached; leave empty when you paste a key.") ?>
</fieldset>
<?cs /def ?>
<?cs # Selects of the provider settings. ?>
<?cs def:select_auth(form) ?>
<div class="field">
<label for="<?cs var:form ?>-provider_auth">Provider authentication</label>
<?cs call:hint(form, "provider_auth", "How the worker authenticates when it pulls from the provider.") ?>
<select id="<?cs var:form ?>-provider_auth" name="provider_auth"<?cs call:described(form, "provider_auth", "x") ?>>
<option value="smart"<?cs if:Form[form].provider_auth != "open" ?> selected<?cs /if ?>>SMART Backend Services (private_key_jwt)</option>
<option value="open"<?cs if:Form[form].provider_auth == "open" ?> selected<?cs /if ?>>Open (no authentication)</option>
</select>
<?cs call:field_error(form, "provider_auth") ?>
</div>
<?cs /def ?>
<?cs def:advanced(form) ?>
<details<?cs if:Errors[form].scope || Errors[form].kickoff_method ?> open<?cs /if ?>>
<summary>Advanced</summary>
<?cs call:text_field(form, "scope", "Scope requested from the provider", "text", "Empty: the server default (default_scope).") ?>
<div class="field">
<label for="<?cs var:form ?>-kickoff_method">Kick-off method</label>
<select id="<?cs var:form ?>-kickoff_method" name="kickoff_method"<?cs call:described(form, "kickoff_method", "") ?>>
<option value="post"<?cs if:Form[form].kickoff_method != "get" ?> selected<?cs /if ?>>POST with a Parameters body</option>
<option value="get"<?cs if:Form[form].kickoff_method == "get" ?> selected<?cs /if ?>>GET with query parameters</option>
</select>
<?cs call:field_error(form, "kickoff_method") ?>
</div>
</details>
<?cs /def ?>
<?cs # One row of an imports table (dashboard and client page); static/ui.js builds the same rows from imports.json. ?>
<?cs def:import_row(i, with_client) ?>
<tr data-import="<?cs var:i.id ?>">
<td data-label="Import"><a href="<?cs var:Root ?>/admin/imports/<?cs var:i.id ?>"><?cs var:string.slice(i.id, 0, 8) ?></a></td>
<?cs if:with_client ?><td data-label="Client"><a href="<?cs var:Root ?>/admin/clients/<?cs var:i.client_id ?>"><?cs var:i.client ?></a></td><?cs /if ?>
<td data-label="Type"><?cs var:i.type ?></td>
<td data-label="State"><?cs call:state(i.state) ?></td>
<td data-label="Progress" class="progress"><?cs call:progress(i.pct, "Progress") ?></td>
<td data-label="Files" class="num"><?cs var:i.files ?></td>
<td data-label="Resources" class="num"><?cs var:i.resources ?></td>
<td data-label="Bytes" class="num"><?cs var:i.bytes ?></td>
<td data-label="Throughput" class="num"><?cs var:i.throughput ?></td>
<td data-label="Started" class="when"><?cs var:i.started ?></td>
<td data-label="Duration" class="num"><?cs var:i.duration ?></td>
</tr>
<?cs /def ?>
<?cs def:import_head(with_client) ?>
<thead><tr><th scope="col">Import</th><?cs if:with_client ?><th scope="col">Client</th><?cs /if ?><th scope="col">Type</th><th scope="col">State</th><th scope="col">Progress</th><th scope="col">Files</th><th scope="col">Resources</th><th scope="col">Bytes</th><th scope="col">Throughput</th><th scope="col">Started</th><th scope="col">Duration</th></tr></thead>
<?cs /def ?>

<?cs def:content() ?>
<div class="actions">
<form class="search" method="get" action="<?cs var:Root ?>/admin/clients" role="search">
<label for="q">Search clients</label>
<input id="q" name="q" type="search" value="<?cs var:Query ?>" placeholder="name, URL or client_id">
<button type="submit">Search</button>
<?cs if:Query ?><a href="<?cs var:Root ?>/admin/clients">Show all</a><?cs /if ?>
</form>
<p><a class="button" href="<?cs var:Root ?>/admin/clients/new">Register a client</a></p>
</div>
<?cs if:Count == 0 ?>
<p class="empty"><?cs if:Query ?>No client matches "<?cs var:Query ?>".<?cs else ?>No clients yet. Register the first Data Provider.<?cs /if ?></p>
<?cs else ?>
<p class="count"><?cs var:Count ?> client<?cs if:Count != 1 ?>s<?cs /if ?><?cs if:Query ?> matching "<?cs var:Query ?>"<?cs /if ?><?cs if:Cut ?> (only the newest <?cs var:Cut ?> are shown; search to narrow)<?cs /if ?></p>
<div class="scroll">
<table id="clients">
<thead><tr><th scope="col">Name</th><th scope="col">Provider FHIR base URL</th><th scope="col">Key source</th><th scope="col">Created</th><th scope="col">Last import</th><th scope="col">State</th></tr></thead>
<tbody>
<?cs each:c = Clients ?>
<tr>
<td><a href="<?cs var:Root ?>/admin/clients/<?cs var:c.id ?>"><?cs var:c.name ?></a></td>
<td><code><?cs var:c.fhir_base_url ?></code></td>
<td><?cs var:c.key_source ?></td>
<td><?cs var:c.created ?></td>
<td><?cs if:c.last_import ?><?cs var:c.last_import ?><?cs else ?>never<?cs /if ?></td>
<td><?cs call:client_state(c.enabled) ?></td>
</tr>
<?cs /each ?>
</tbody>
</table>
</div>
<?cs /if ?>
<?cs /def ?>

<?cs def:content() ?>
<?cs if:Problem ?><p class="error" role="alert"><?cs var:Problem ?></p><?cs /if ?>
<p>Delete the client <strong><?cs var:Client.name ?></strong> (<code><?cs var:Client.id ?></code>)?</p>
<ul>
<li>Its access tokens stop working at once and it can no longer ping.</li>
<li>The records of its <?cs var:Client.n_imports ?> import<?cs if:Client.n_imports != 1 ?>s<?cs /if ?> (files list, outcome entries) are deleted; files already stored under the storage directory stay.</li>
<li>To stop it only for a while, disable it instead.</li>
</ul>
<?cs if:Client.n_busy > 0 ?>
<p><?cs var:Client.n_busy ?> of its imports still need a worker, so it cannot be deleted now.</p>
<?cs else ?>
<form method="post" action="<?cs var:Root ?>/admin/clients/<?cs var:Client.id ?>/delete">
<?cs call:csrf() ?>
<p><button type="submit" class="danger">Delete this client</button> <a href="<?cs var:Root ?>/admin/clients/<?cs var:Client.id ?>">Keep it</a></p>
</form>
<?cs /if ?>
<?cs /def ?>

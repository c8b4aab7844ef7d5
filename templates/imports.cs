<?cs def:content() ?>
<p class="live"><span id="live" role="status"><?cs if:Running > 0 ?><?cs var:Running ?> running.<?cs else ?>Nothing running.<?cs /if ?></span> <a href="<?cs var:Root ?>/admin/imports">Refresh</a></p>
<div class="scroll">
<table id="imports" class="cards" data-src="<?cs var:Root ?>/admin/imports.json" data-root="<?cs var:Root ?>" data-running="<?cs var:Running ?>">
<caption>Running imports first, then the most recent (up to <?cs var:Limit ?>)</caption>
<?cs call:import_head(1) ?>
<tbody>
<?cs each:i = Imports ?><?cs call:import_row(i, 1) ?><?cs /each ?>
<?cs if:!Imports.0.id ?><tr><td colspan="11" class="empty">No imports yet. They appear here when a registered provider pings <code>$import</code>.</td></tr><?cs /if ?>
</tbody>
</table>
</div>
<?cs /def ?>

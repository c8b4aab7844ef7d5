<?cs def:content() ?>
<p class="error" role="alert"><?cs var:Error.Message ?></p>
<p><a href="<?cs var:Root ?>/admin/">Back to the server page</a></p>
<?cs /def ?>

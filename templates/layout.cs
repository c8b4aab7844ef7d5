<?cs # The one layout of the admin UI.  Each page file defines content();
     # ui_render parses macros.cs, the page and then this file. ?>
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title><?cs var:Page.Title ?> - bulk-import admin</title>
<link rel="icon" href="<?cs var:Root ?>/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="<?cs var:Root ?>/static/ui.css">
<script src="<?cs var:Root ?>/static/ui.js" defer></script>
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="top">
<p class="brand"><a href="<?cs var:Root ?>/admin/">bulk-import</a></p>
<nav aria-label="Main">
<ul>
<li><a href="<?cs var:Root ?>/admin/"<?cs if:Page.Nav == "home" ?> aria-current="page"<?cs /if ?>>Server</a></li>
<li><a href="<?cs var:Root ?>/admin/clients"<?cs if:Page.Nav == "clients" ?> aria-current="page"<?cs /if ?>>Clients</a></li>
<li><a href="<?cs var:Root ?>/admin/imports"<?cs if:Page.Nav == "imports" ?> aria-current="page"<?cs /if ?>>Imports</a></li>
<li><a href="<?cs var:Root ?>/admin/keys"<?cs if:Page.Nav == "keys" ?> aria-current="page"<?cs /if ?>>Key generator</a></li>
</ul>
</nav>
<?cs if:User ?><p class="user">Signed in as <strong><?cs var:User ?></strong></p><?cs /if ?>
</header>
<main id="main">
<h1><?cs var:Page.Title ?></h1>
<?cs if:Done ?><p class="notice" role="status"><?cs var:Done ?></p><?cs /if ?>
<?cs call:content() ?>
</main>
<footer class="foot">
<p>bulk-import: FHIR Bulk Data import (ping and pull). Times are UTC.</p>
</footer>
</body>
</html>

# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sphinx configuration of the nanoedge.core docs site (``make docs``).

Started from what ``antsibull-docs sphinx-init`` writes, with three changes:
MyST reads the Markdown guides; untagged code blocks (the guides' shell
sessions and outputs) are not highlighted; and no intersphinx, since the site
is built offline and a failed inventory download is a warning, which -W turns
into an error. What intersphinx would resolve, the pages of ansible-core and of
the collections nanoedge.core depends on, links to docs.ansible.com instead
(``setup`` below).
"""

from __future__ import annotations

import typing as t

from docutils import nodes

project = "nanoedge.core"
copyright = "nanoedge.core contributors"  # pylint: disable=redefined-builtin

title = "nanoedge.core documentation"
html_short_title = "nanoedge.core"

extensions = ["sphinx_antsibull_ext", "myst_parser"]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"

pygments_style = "ansible"
highlight_language = "none"

html_theme = "sphinx_ansible_theme"
# Every page's navigation links every page: the guides, then each plugin and role under the
# collection's index (its toctrees are hidden in its body, where it lists them with descriptions).
html_theme_options = {
    "collapse_navigation": False,
    "navigation_depth": 3,
    "titles_only": True,
    "show_extranav": False,
}
templates_path = ["_templates"]
html_show_sphinx = False
html_title = title

display_version = False

html_use_smartypants = True
html_use_modindex = False
html_use_index = False
html_copy_source = False

default_role = "any"

nitpicky = True

# The guides link to their own sections (`[the profile](#the-profile)`): give
# headings down to ### the anchors GitHub gives them.
myst_heading_anchors = 3

ANSIBLE_DOCS = "https://docs.ansible.com/projects/ansible/latest/"
# The Ansible docsite's labels that antsibull-docs' pages refer to: page and title.
ANSIBLE_DOCS_LABELS = {
    "action_plugins": ("plugins/action.html", "Action plugins"),
    "common_return_values": ("reference_appendices/common_return_values.html", "Return Values"),
    "ansible_configuration_settings": ("reference_appendices/config.html", "Ansible Configuration Settings"),
}


def ansible_docs_uri(reftype: str, target: str) -> t.Optional[str]:
    """Where docs.ansible.com has TARGET, for the references of our pages to its
    labels, to ansible-core's settings and to other collections' plugins."""
    if reftype == "envvar":
        return "reference_appendices/config.html#envvar-" + target
    if reftype != "ref":
        return None
    if target in ANSIBLE_DOCS_LABELS:
        return ANSIBLE_DOCS_LABELS[target][0] + "#" + nodes.make_id(target)
    page, anchor, _option = target.partition("__")
    parts = page.split(".")
    if len(parts) != 4 or parts[0] != "ansible_collections" or parts[1:3] == ["nanoedge", "core"]:
        return None  # a page of this site that is not there: let Sphinx warn
    uri = "collections/%s/%s/%s.html" % tuple(parts[1:])
    return uri + ("#" + nodes.make_id(target) if anchor else "")


def link_to_ansible_docs(_app: t.Any, _env: t.Any, node: t.Any, contnode: nodes.Node) -> t.Optional[nodes.Node]:
    """Sphinx's missing-reference handler: a link to docs.ansible.com, or None."""
    target = node.get("reftarget", "")
    uri = ansible_docs_uri(node.get("reftype", ""), target)
    if uri is None:
        return None
    reference = nodes.reference("", "", internal=False, refuri=ANSIBLE_DOCS + uri)
    if node.get("reftype") == "ref" and not node.get("refexplicit") and target in ANSIBLE_DOCS_LABELS:
        reference += nodes.inline(text=ANSIBLE_DOCS_LABELS[target][1])
    else:
        reference += contnode
    return reference


def setup(app: t.Any) -> dict[str, t.Any]:
    app.connect("missing-reference", link_to_ansible_docs)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

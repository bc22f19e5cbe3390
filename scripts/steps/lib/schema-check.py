# Run by make-seed-iso.sh with the image's own python3, inside the image's root
# (read-only): `cloud-init schema` of that image on a user-data file, whose verdict
# (exit status) it returns and whose messages it prints with the user-data's values
# hidden, so that passwords or file contents never reach a log. Keys, paths
# (users.0.passwd) and cloud-init's words stay.
#
#   python3 schema-check.py USER-DATA
import re
import subprocess
import sys

import yaml

HIDDEN = "<hidden>"


def value_texts(node, texts):
    """The ways a value of the user-data can appear in a message: its repr (as
    jsonschema prints an instance) and, for longer strings, the string itself."""
    if isinstance(node, dict):
        for value in node.values():
            value_texts(value, texts)
        texts.add(repr(node))
    elif isinstance(node, list):
        for value in node:
            value_texts(value, texts)
        texts.add(repr(node))
    elif isinstance(node, str):
        texts.add(repr(node))
        if len(node) >= 8:
            texts.add(node)
    elif isinstance(node, bool) or node is None:
        pass
    elif len(repr(node)) >= 4:
        # Short numbers would clobber the list indexes of paths (users.0); they are not secrets.
        texts.add(repr(node))


def hide_values(text, config):
    texts = set()
    value_texts(config, texts)
    for value in sorted(texts, key=len, reverse=True):
        pattern = re.escape(value)
        if value[:1].isalnum():
            pattern = r"(?<![\w.])" + pattern
        if value[-1:].isalnum():
            pattern += r"(?![\w])"
        text = re.sub(pattern, HIDDEN, text)
    return text


def main():
    path = sys.argv[1]
    run = subprocess.run(
        ["/usr/bin/cloud-init", "schema", "--config-file", path],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        universal_newlines=True,
    )
    if run.returncode == 0:
        return 0
    try:
        with open(path) as user_data:
            config = yaml.safe_load(user_data)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = " (line %d)" % (mark.line + 1) if mark else ""
        print("user-data is not valid YAML%s" % where)
        return run.returncode
    print(hide_values(run.stdout, config).rstrip("\n"))
    return run.returncode


sys.exit(main())

"""InfluxDB 1.x line protocol and InfluxQL quoting, as pure functions.

Everything :mod:`shadow_service.history.influxdb` sends to the server is
built here, so the escaping rules live in one place and are tested alone.

Measured on InfluxDB 1.6.7: ``\\,``, ``\\ `` and ``\\=`` are unescaped in
tag values, but a backslash is kept literally (``x\\\\y`` is stored with two
backslashes) and a tag value ending in a backslash is a parse error; a
newline ends the line; InfluxQL string literals and quoted identifiers
cannot hold NUL or a carriage return, and hold a newline only escaped
(``\\n``).  So tag
values are *percent-encoded* for exactly the characters line protocol or
InfluxQL cannot carry (``%``, ``\\``, newline, carriage return, NUL) and
then backslash-escaped for the separators.  Reading decodes them again,
so what is written is what is read back; other tools reading the database
see ``%5C`` for a backslash.  String field values only need
``\\`` and ``"`` escaped (newlines inside quotes are kept).
"""

_TAG_PERCENT = {'%': '%25', '\\': '%5C', '\n': '%0A', '\r': '%0D',
                '\x00': '%00'}
_TAG_PERCENT_TABLE = str.maketrans(_TAG_PERCENT)
_SEPARATORS = str.maketrans({',': '\\,', ' ': '\\ ', '=': '\\='})
_MEASUREMENT = str.maketrans({',': '\\,', ' ': '\\ '})
_FIELD_STRING = str.maketrans({'\\': '\\\\', '"': '\\"'})
_IDENT = str.maketrans({'\\': '\\\\', '"': '\\"', '\n': '\\n'})
_LITERAL = str.maketrans({'\\': '\\\\', "'": "\\'", '\n': '\\n'})
_REGEX_PLAIN = frozenset('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'
                         '0123456789_')


def encode_tag_value(value):
    """The form of a tag value as stored in InfluxDB (percent-encoded)."""
    return value.translate(_TAG_PERCENT_TABLE)


def decode_tag_value(stored):
    """Invert :func:`encode_tag_value`."""
    if '%' not in stored:
        return stored
    parts = stored.split('%')
    decoded = [parts[0]]
    for part in parts[1:]:
        code, rest = part[:2], part[2:]
        decoded.append(_PERCENT_DECODE.get(code.upper(), '%' + code) + rest)
    return ''.join(decoded)


_PERCENT_DECODE = {code[1:]: char for char, code in _TAG_PERCENT.items()}


def escape_key(key):
    """Escape a tag key or field key."""
    return key.translate(_SEPARATORS)


def escape_measurement(name):
    return name.translate(_MEASUREMENT)


def format_field_value(value):
    """A field value in line protocol: floats as floats, bools as
    ``true``/``false``, strings quoted."""
    if value is True:
        return 'true'
    if value is False:
        return 'false'
    if isinstance(value, str):
        return '"%s"' % value.translate(_FIELD_STRING)
    return repr(float(value))


def series_key(measurement, tags):
    """``measurement,tag=value,...`` with tags sorted, escaped."""
    parts = [escape_measurement(measurement)]
    for key in sorted(tags):
        parts.append('%s=%s' % (
            escape_key(key),
            encode_tag_value(tags[key]).translate(_SEPARATORS)))
    return ','.join(parts)


# Escaped series keys and field keys by their raw form: a store writes
# the same series over and over, so this saves most of the escaping.
_SERIES_KEYS = {}
_FIELD_KEYS = {}
_MAX_CACHED = 100000


def _cached_series_key(measurement, tags):
    cache_key = (measurement, tuple(tags.items()))
    found = _SERIES_KEYS.get(cache_key)
    if found is None:
        if len(_SERIES_KEYS) >= _MAX_CACHED:
            _SERIES_KEYS.clear()
        found = _SERIES_KEYS[cache_key] = series_key(measurement, tags)
    return found


def _field_pair(name, value):
    key = _FIELD_KEYS.get(name)
    if key is None:
        if len(_FIELD_KEYS) >= _MAX_CACHED:
            _FIELD_KEYS.clear()
        key = _FIELD_KEYS[name] = escape_key(name) + '='
    if type(value) is float:
        return key + repr(value)
    return key + format_field_value(value)


def point_to_line(point):
    """One line for a point already passed through ``prepare_point``;
    the timestamp is in microseconds (write with ``precision=u``)."""
    return format_line(point.measurement, point.tags, point.fields,
                       point.time)


def format_line(measurement, tags, fields, time_s):
    """One line from the parts :func:`base.normalise` returns."""
    key = _SERIES_KEYS.get((measurement, tuple(tags.items())))
    if key is None:
        key = _cached_series_key(measurement, tags)
    if len(fields) == 1:
        (name, value), = fields.items()
        body = _field_pair(name, value)
    else:
        body = ','.join([_field_pair(k, v) for k, v in fields.items()])
    return f'{key} {body} {round(time_s * 1e6)}'


def quote_ident(name):
    """An InfluxQL identifier in double quotes (a newline escaped as
    ``\\n``: a raw one ends it).

    Raises
    ------
    ValueError
        For a name holding a carriage return or NUL: no InfluxQL
        identifier can carry them.
    """
    if not literal_safe(name):
        raise ValueError('an InfluxQL identifier cannot hold a carriage '
                         'return or NUL: %r' % (name,))
    return '"%s"' % name.translate(_IDENT)


def quote_literal(text):
    """An InfluxQL string literal in single quotes (a newline escaped as
    ``\\n``).

    Raises
    ------
    ValueError
        For a text holding a carriage return or NUL: no InfluxQL string
        literal can carry them (:func:`tag_equals` matches such a value).
    """
    if not literal_safe(text):
        raise ValueError('an InfluxQL string literal cannot hold a carriage '
                         'return or NUL: %r' % (text,))
    return "'%s'" % text.translate(_LITERAL)


def literal_safe(text):
    """True if :func:`quote_literal` can write ``text``."""
    return '\r' not in text and '\x00' not in text


def exact_regex(text):
    """An InfluxQL regex literal matching exactly ``text``: every
    character but ASCII letters, digits and ``_`` is written as an RE2
    ``\\x{hex}`` escape, so neither the regex nor InfluxQL's ``/``
    delimiters see anything special, and characters no string literal can
    hold are matched too."""
    return '/^%s$/' % ''.join(
        c if c in _REGEX_PLAIN else '\\x{%x}' % ord(c) for c in text)


def tag_equals(key, value):
    """``"key" = 'value'``, or for a value no string literal can carry
    (see :func:`quote_literal`) ``"key" =~ /^...$/`` matching exactly
    ``value``."""
    if literal_safe(value):
        return '%s = %s' % (quote_ident(key), quote_literal(value))
    return '%s =~ %s' % (quote_ident(key), exact_regex(value))


def tag_condition(tags):
    """``"k" = 'v' AND ...`` matching the stored (encoded) tag values;
    empty string if there are no tags.  A tag whose wanted value is a
    collection of strings matches any of them: ``("k" = 'a' OR "k" =
    'b')`` (an empty collection cannot be expressed: the caller answers
    it)."""
    conditions = []
    for key, value in sorted((tags or {}).items()):
        values = [value] if isinstance(value, str) else sorted(set(value))
        terms = ['%s = %s' % (quote_ident(key),
                              quote_literal(encode_tag_value(one)))
                 for one in values]
        conditions.append(terms[0] if len(terms) == 1
                          else '(%s)' % ' OR '.join(terms))
    return ' AND '.join(conditions)


# Shapes seen before: (measurement, tag items, field names) -> (escaped
# series key, escaped "field=" prefix).  Only single-float-field points
# that passed base.normalise unchanged are cached, so a hit leaves only
# the value and the time to check.
_SHAPES = {}


def line_for(point, normalise):
    """Validate ``point`` with ``normalise`` (:func:`base.normalise`) and
    return its line; repeated shapes take a fast path with the same
    checks on the value and time."""
    fields = point.fields
    moment = point.time
    try:
        shape = _SHAPES.get((point.measurement, tuple(point.tags.items()),
                             tuple(fields)))
    except TypeError:  # an unhashable name or tag value: the slow path
        shape = None
    if shape is not None and type(moment) is float and (
            moment - moment == 0.0):
        (value,) = fields.values()
        if type(value) is float and value - value == 0.0:
            return f'{shape[0]} {shape[1]}{value!r} {round(moment * 1e6)}'
    tags, normal_fields, time_s = normalise(point)
    line = format_line(point.measurement, tags, normal_fields, time_s)
    if (len(normal_fields) == 1 and tags is point.tags
            and normal_fields is fields):
        if len(_SHAPES) >= _MAX_CACHED:
            _SHAPES.clear()
        (name,) = fields
        _SHAPES[(point.measurement, tuple(tags.items()), (name,))] = (
            _cached_series_key(point.measurement, tags),
            escape_key(name) + '=')
    return line

"""The one request builder: what nova-shadow is asked to evaluate.

The weigher (from Nova's ``RequestSpec``), the demo and every benchmark
(from plain flavor dicts) build the RPC ``request`` with
:func:`build_request`, so what is measured and published is what a
deployed scheduler sends.  Nothing here imports Nova: the weigher extracts
the plain values first (:func:`flavor_of`).

How big the workload is
    A workload profile describes the load of a VM with
    :data:`PROFILE_REFERENCE_VCPUS` vCPUs.  A request for a bigger or
    smaller flavor scales it (``profile_scale`` = vCPUs /
    :data:`PROFILE_REFERENCE_VCPUS`, at least :data:`MIN_PROFILE_SCALE`
    and at most :data:`MAX_PROFILE_SCALE`): a tenant who asks for eight
    vCPUs expects four times the load of a two vCPU VM.  The service then
    runs ``[shadow] shadow_scale`` of that load on the flavor-minimal
    shadow.  A flavor above ``MAX_PROFILE_SCALE`` x
    ``PROFILE_REFERENCE_VCPUS`` (128) vCPUs is evaluated with the largest
    load loadgen runs, that of a 128 vCPU VM.
"""

import math

#: vCPUs of the VM a workload profile describes.
PROFILE_REFERENCE_VCPUS = 2
#: Smallest profile scale (a 1 vCPU VM runs half the reference load).
MIN_PROFILE_SCALE = 0.5
#: Largest profile scale: loadgen's own bound (``loadgen.profiles.
#: MAX_SCALE``) and the request schema's.  Bigger flavors are measured at
#: it rather than refused (a refusal left such a VM with neutral weights).
MAX_PROFILE_SCALE = 64.0
#: Longest flavor or image name kept in a request.
MAX_NAME = 255


def profile_scale(vcpus):
    """The profile scale of a flavor with ``vcpus`` vCPUs."""
    return min(MAX_PROFILE_SCALE,
               max(MIN_PROFILE_SCALE,
                   float(max(vcpus, 0)) / PROFILE_REFERENCE_VCPUS))


def _int(value, default):
    """An int, or ``default`` when missing or not a number (a value out of
    range is kept: the service's schema rejects it and names it)."""
    if value is None or isinstance(value, bool):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def flavor_of(flavor):
    """A plain flavor dict from a Nova ``Flavor`` object (or anything with
    the same attributes) or from a dict with ``vcpus``/``memory_mb`` or
    ``ram_mb``."""
    if isinstance(flavor, dict):
        get = flavor.get
    else:
        def get(name, default=None):
            try:
                if (hasattr(flavor, 'obj_attr_is_set')
                        and not flavor.obj_attr_is_set(name)):
                    return default
                return getattr(flavor, name, default)
            except Exception:
                return default
    ram = get('ram_mb') if get('ram_mb') is not None else get('memory_mb')
    disk = get('disk_gb') if get('disk_gb') is not None else get('root_gb')
    return {
        'name': str(get('name', '') or '')[:MAX_NAME],
        'vcpus': _int(get('vcpus'), 1),
        'ram_mb': _int(ram, 512),
        'disk_gb': _int(disk, 0),
        'extra_specs': {str(k): str(v) for k, v in
                        dict(get('extra_specs', {}) or {}).items()},
    }


def build_request(flavor, profile, *, image_id=None, project_id=None,
                  instance_uuid=None, num_instances=1, purpose='boot',
                  availability_zone=None):
    """The RPC request dict (JSON values only).

    Parameters
    ----------
    flavor : dict or Nova Flavor
    profile : str or dict
        A profile name or an inline profile.
    image_id, project_id, instance_uuid : str, optional
    num_instances : int
        VMs the request places (a multi-create); the weigher asks once
        for all of them and the service records the count.
    purpose : str
        ``boot`` or a move operation (``resize``, ``migrate``,
        ``live-migrate``, ``unshelve``): moves are answered from history
        without shadows.
    availability_zone : str, optional
        The zone the request asks for: hosts of other zones never take
        the VM.
    """
    flavor = flavor_of(flavor)
    request = {'flavor': flavor, 'profile': profile,
               'profile_scale': profile_scale(flavor['vcpus'])}
    for key, value in (('image_id', image_id), ('project_id', project_id),
                       ('instance_uuid', instance_uuid),
                       ('availability_zone', availability_zone)):
        if value:
            request[key] = str(value)[:MAX_NAME]
    if num_instances and int(num_instances) > 1:
        request['num_instances'] = int(num_instances)
    if purpose != 'boot':
        request['purpose'] = purpose
    return request


def finite(value):
    """``value`` if it is a finite number, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value if math.isfinite(value) else None

"""``openstack``: the CloudDriver of a real cloud, through openstacksdk.

:mod:`~shadow_service.clouds.openstack.driver` is the driver;
:mod:`~shadow_service.clouds.openstack.userdata` renders what a shadow
runs.  This package is the only one that imports openstacksdk.
"""

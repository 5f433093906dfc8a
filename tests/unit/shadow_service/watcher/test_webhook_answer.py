"""What a scale webhook's answer says of its group's size."""

import pytest
import requests

from shadow_service.watcher import actuator


def _answer(body):
    response = requests.Response()
    response.status_code = 202
    response._content = body.encode()
    return response


@pytest.mark.parametrize('body, size', [
    ('{"group_size": 3, "stack": "upd-1"}', 3),
    ('{"stack": "upd-1"}', None),
    ('', None),
    ('accepted', None),
    ('[3]', None),
    ('{"group_size": 0}', None),
    ('{"group_size": "3"}', None),
    ('{"group_size": 2.5}', None),
    ('{"group_size": true}', None),
])
def test_only_a_whole_group_size_of_at_least_one_is_taken(body, size):
    assert actuator.stated_group_size(_answer(body)) == size

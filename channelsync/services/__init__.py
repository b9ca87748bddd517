from channelsync.services.channels import *  # noqa: F403  (split by domain next)
from channelsync.services.channels import CHANNEL_EDITABLE_FIELDS  # noqa: F401

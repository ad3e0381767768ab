"""GraphQL enums shared by several domains (one Python enum may be wrapped only once)."""

import strawberry

from models.campaigns.rules import Category as CategoryEnum
from models.campaigns.rules import Channel as ChannelEnum

Channel = strawberry.enum(ChannelEnum, name="Channel", description="A channel messages go out on.")
Category = strawberry.enum(
    CategoryEnum,
    name="Category",
    description="MARKETING messages need consent and honour suppressions; TRANSACTIONAL ones are operational.",
)

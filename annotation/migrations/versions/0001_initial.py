"""initial schema: people, items, impressions, feedback, assets, pairs, labels, eval runs

Revision ID: 0001
Revises: 
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('annotators',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("role IN ('annotator', 'admin')", name=op.f('ck_annotators_role')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_annotators')),
    sa.UniqueConstraint('name', name=op.f('uq_annotators_name'))
    )
    op.create_table('eval_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model', sa.String(length=256), nullable=False),
    sa.Column('dataset', sa.String(length=256), nullable=False),
    sa.Column('split', sa.String(length=64), nullable=False),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_eval_runs'))
    )
    op.create_index(op.f('ix_eval_runs_created_at'), 'eval_runs', ['created_at'])
    op.create_index('ix_eval_runs_model_dataset', 'eval_runs', ['model', 'dataset', 'split'])

    op.create_table('items',
    sa.Column('item_id', sa.String(length=64), nullable=False),
    sa.Column('title', sa.String(length=512), nullable=False),
    sa.Column('year', sa.Integer(), nullable=True),
    sa.Column('genres', sa.JSON(), nullable=False),
    sa.Column('synced_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('item_id', name=op.f('pk_items'))
    )
    op.create_table('users',
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("kind IN ('dataset', 'new')", name=op.f('ck_users_kind')),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_users'))
    )
    op.create_table('app_sessions',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=True),
    sa.Column('annotator_id', sa.Integer(), nullable=True),
    sa.Column('user_agent', sa.String(length=512), nullable=True),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['annotator_id'], ['annotators.id'], name=op.f('fk_app_sessions_annotator_id_annotators')),
    sa.ForeignKeyConstraint(['user_id'], ['users.user_id'], name=op.f('fk_app_sessions_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_app_sessions'))
    )
    op.create_index(op.f('ix_app_sessions_annotator_id'), 'app_sessions', ['annotator_id'])
    op.create_index(op.f('ix_app_sessions_user_id'), 'app_sessions', ['user_id'])

    op.create_table('generated_assets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('item_id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=True),
    sa.Column('generator', sa.String(length=256), nullable=False),
    sa.Column('fallback', sa.Boolean(), nullable=False),
    sa.Column('prompt', sa.Text(), nullable=False),
    sa.Column('negative_prompt', sa.Text(), nullable=True),
    sa.Column('seed', sa.BigInteger(), nullable=True),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('path', sa.String(length=1024), nullable=True),
    sa.Column('text', sa.Text(), nullable=True),
    sa.Column('content_hash', sa.String(length=128), nullable=False),
    sa.Column('latency_ms', sa.Float(), nullable=False),
    sa.Column('personalized', sa.Boolean(), nullable=False),
    sa.Column('cache_hit', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("kind IN ('cover', 'caption')", name=op.f('ck_generated_assets_kind')),
    sa.CheckConstraint('path IS NOT NULL OR text IS NOT NULL', name=op.f('ck_generated_assets_payload')),
    sa.ForeignKeyConstraint(['item_id'], ['items.item_id'], name=op.f('fk_generated_assets_item_id_items')),
    sa.ForeignKeyConstraint(['user_id'], ['users.user_id'], name=op.f('fk_generated_assets_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_generated_assets')),
    sa.UniqueConstraint('event_id', name=op.f('uq_generated_assets_event_id'))
    )
    op.create_index(op.f('ix_generated_assets_content_hash'), 'generated_assets', ['content_hash'])
    op.create_index(op.f('ix_generated_assets_created_at'), 'generated_assets', ['created_at'])
    op.create_index(op.f('ix_generated_assets_item_id'), 'generated_assets', ['item_id'])
    op.create_index(op.f('ix_generated_assets_user_id'), 'generated_assets', ['user_id'])

    op.create_table('impressions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('session_id', sa.String(length=36), nullable=True),
    sa.Column('model', sa.String(length=256), nullable=False),
    sa.Column('model_b', sa.String(length=256), nullable=True),
    sa.Column('tab', sa.String(length=32), nullable=True),
    sa.Column('query', sa.String(length=512), nullable=True),
    sa.Column('context', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['session_id'], ['app_sessions.id'], name=op.f('fk_impressions_session_id_app_sessions')),
    sa.ForeignKeyConstraint(['user_id'], ['users.user_id'], name=op.f('fk_impressions_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_impressions')),
    sa.UniqueConstraint('event_id', name=op.f('uq_impressions_event_id'))
    )
    op.create_index(op.f('ix_impressions_created_at'), 'impressions', ['created_at'])
    op.create_index(op.f('ix_impressions_user_id'), 'impressions', ['user_id'])

    op.create_table('feedback_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('item_id', sa.String(length=64), nullable=False),
    sa.Column('impression_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("kind IN ('click', 'like', 'dislike', 'rating', 'skip', 'dwell')", name=op.f('ck_feedback_events_kind')),
    sa.ForeignKeyConstraint(['impression_id'], ['impressions.id'], name=op.f('fk_feedback_events_impression_id_impressions')),
    sa.ForeignKeyConstraint(['item_id'], ['items.item_id'], name=op.f('fk_feedback_events_item_id_items')),
    sa.ForeignKeyConstraint(['user_id'], ['users.user_id'], name=op.f('fk_feedback_events_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_feedback_events')),
    sa.UniqueConstraint('event_id', name=op.f('uq_feedback_events_event_id'))
    )
    op.create_index(op.f('ix_feedback_events_created_at'), 'feedback_events', ['created_at'])
    op.create_index(op.f('ix_feedback_events_impression_id'), 'feedback_events', ['impression_id'])
    op.create_index(op.f('ix_feedback_events_item_id'), 'feedback_events', ['item_id'])
    op.create_index('ix_feedback_events_kind_created_at', 'feedback_events', ['kind', 'created_at'])
    op.create_index(op.f('ix_feedback_events_user_id'), 'feedback_events', ['user_id'])

    op.create_table('impression_items',
    sa.Column('impression_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.String(length=64), nullable=False),
    sa.Column('contributor', sa.String(length=256), nullable=True),
    sa.ForeignKeyConstraint(['impression_id'], ['impressions.id'], name=op.f('fk_impression_items_impression_id_impressions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['item_id'], ['items.item_id'], name=op.f('fk_impression_items_item_id_items')),
    sa.PrimaryKeyConstraint('impression_id', 'position', name=op.f('pk_impression_items'))
    )
    op.create_index(op.f('ix_impression_items_item_id'), 'impression_items', ['item_id'])

    op.create_table('pair_tasks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pair_key', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('asset_a_id', sa.Integer(), nullable=True),
    sa.Column('asset_b_id', sa.Integer(), nullable=True),
    sa.Column('impression_a_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('impression_b_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('target_user_id', sa.String(length=64), nullable=True),
    sa.Column('slots_taken', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("kind IN ('cover', 'caption', 'slate')", name=op.f('ck_pair_tasks_kind')),
    sa.CheckConstraint('(asset_a_id IS NOT NULL AND asset_b_id IS NOT NULL AND impression_a_id IS NULL AND impression_b_id IS NULL) OR (asset_a_id IS NULL AND asset_b_id IS NULL AND impression_a_id IS NOT NULL AND impression_b_id IS NOT NULL)', name=op.f('ck_pair_tasks_sides')),
    sa.CheckConstraint('slots_taken >= 0', name=op.f('ck_pair_tasks_slots')),
    sa.ForeignKeyConstraint(['asset_a_id'], ['generated_assets.id'], name=op.f('fk_pair_tasks_asset_a_id_generated_assets')),
    sa.ForeignKeyConstraint(['asset_b_id'], ['generated_assets.id'], name=op.f('fk_pair_tasks_asset_b_id_generated_assets')),
    sa.ForeignKeyConstraint(['impression_a_id'], ['impressions.id'], name=op.f('fk_pair_tasks_impression_a_id_impressions')),
    sa.ForeignKeyConstraint(['impression_b_id'], ['impressions.id'], name=op.f('fk_pair_tasks_impression_b_id_impressions')),
    sa.ForeignKeyConstraint(['target_user_id'], ['users.user_id'], name=op.f('fk_pair_tasks_target_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pair_tasks')),
    sa.UniqueConstraint('pair_key', name=op.f('uq_pair_tasks_pair_key'))
    )
    op.create_index(op.f('ix_pair_tasks_asset_a_id'), 'pair_tasks', ['asset_a_id'])
    op.create_index(op.f('ix_pair_tasks_asset_b_id'), 'pair_tasks', ['asset_b_id'])

    op.create_table('pair_assignments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pair_id', sa.Integer(), nullable=False),
    sa.Column('annotator_id', sa.Integer(), nullable=False),
    sa.Column('assigned_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('completed_at', sa.DateTime(), nullable=True),
    sa.Column('holds_slot', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['annotator_id'], ['annotators.id'], name=op.f('fk_pair_assignments_annotator_id_annotators')),
    sa.ForeignKeyConstraint(['pair_id'], ['pair_tasks.id'], name=op.f('fk_pair_assignments_pair_id_pair_tasks')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pair_assignments')),
    sa.UniqueConstraint('pair_id', 'annotator_id', name='uq_pair_assignments_pair_annotator')
    )
    op.create_index(op.f('ix_pair_assignments_annotator_id'), 'pair_assignments', ['annotator_id'])
    op.create_index('ix_pair_assignments_open', 'pair_assignments', ['completed_at', 'expires_at'])

    op.create_table('preference_labels',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('pair_id', sa.Integer(), nullable=False),
    sa.Column('annotator_id', sa.Integer(), nullable=False),
    sa.Column('choice', sa.String(length=8), nullable=True),
    sa.Column('time_spent_ms', sa.Integer(), nullable=True),
    sa.Column('guideline_version', sa.String(length=32), nullable=False),
    sa.Column('is_current', sa.Boolean(), nullable=False),
    sa.Column('supersedes_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("choice IS NULL OR choice IN ('A', 'B', 'tie', 'skip')", name=op.f('ck_preference_labels_choice')),
    sa.ForeignKeyConstraint(['annotator_id'], ['annotators.id'], name=op.f('fk_preference_labels_annotator_id_annotators')),
    sa.ForeignKeyConstraint(['pair_id'], ['pair_tasks.id'], name=op.f('fk_preference_labels_pair_id_pair_tasks')),
    sa.ForeignKeyConstraint(['supersedes_id'], ['preference_labels.id'], name=op.f('fk_preference_labels_supersedes_id_preference_labels')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_preference_labels')),
    sa.UniqueConstraint('event_id', name=op.f('uq_preference_labels_event_id'))
    )
    op.create_index(op.f('ix_preference_labels_created_at'), 'preference_labels', ['created_at'])
    op.create_index('ix_preference_labels_current', 'preference_labels', ['annotator_id', 'is_current'])
    op.create_index('ix_preference_labels_pair', 'preference_labels', ['pair_id', 'annotator_id'])



def downgrade() -> None:
    # Dropping a table drops its indexes; children before parents.
    op.drop_table('preference_labels')
    op.drop_table('pair_assignments')
    op.drop_table('pair_tasks')
    op.drop_table('impression_items')
    op.drop_table('feedback_events')
    op.drop_table('impressions')
    op.drop_table('generated_assets')
    op.drop_table('app_sessions')
    op.drop_table('users')
    op.drop_table('items')
    op.drop_table('eval_runs')
    op.drop_table('annotators')
